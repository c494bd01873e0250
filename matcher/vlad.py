"""Aggregated local features (VLAD): a first stage that finds flat objects small in clutter.

A global embedding describes the whole photo; a coin or a tablet shown small on a cluttered
table is a few percent of its pixels, and the embedding mostly describes the clutter. The
object's surface still gives local features (`matcher.verify`: RootSIFT), and aggregating
them into one vector per photo makes the catalogue searchable by them with one matrix
product, like the global embedding: VLAD (Jegou et al., "Aggregating local descriptors into
a compact image representation", CVPR 2010) with the improvements of Arandjelovic &
Zisserman ("All about VLAD", CVPR 2013): residuals to the nearest of k visual words, summed
per word, each word's sum L2-normalised (intra-normalisation: bursty repeated texture
cannot dominate), then signed square root and L2. Cosine similarity of two VLADs compares
the photos' local descriptor distributions.

Measured (`benchmarks/flat_objects.py`, 300 generated flat objects with one museum photo
each, 150 phone photos of them in clutter, the object 12-30% of the photo's height): the
right object is in the top 20 of the pretrained global kNN for 23% of the photos, of VLAD
(64 words) for 63%; re-ranked by homography inliers, top-1 17% from the global first stage,
57% from VLAD's.

Shapes: a codebook is (k x 128) float32 word centres in RootSIFT space (descriptors / 255);
`encode` gives (k * 128,) float32, unit norm (zero for a photo without features).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from matcher.verify import LocalFeatures

WORDS = 64
SAMPLE = 100_000  # descriptors the codebook is fitted on (k-means cost grows with it)


def fit_codebook(features: Sequence[LocalFeatures | None], words: int = WORDS,
                 seed: int = 0) -> np.ndarray:
    """(words x 128) visual words: k-means (scikit-learn MiniBatchKMeans) on up to `SAMPLE`
    descriptors of `features` (catalogue photos). Raises ValueError with fewer descriptors
    than words."""
    from sklearn.cluster import MiniBatchKMeans

    parts = [f.descriptors for f in features if f is not None and len(f)]
    if not parts or sum(len(p) for p in parts) < words:
        raise ValueError(f"a {words}-word codebook needs at least {words} local descriptors")
    sample = np.concatenate(parts).astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    if len(sample) > SAMPLE:
        sample = sample[rng.choice(len(sample), SAMPLE, replace=False)]
    kmeans = MiniBatchKMeans(words, random_state=seed, n_init=3, batch_size=4096)
    return kmeans.fit(sample).cluster_centers_.astype(np.float32)


def encode(features: LocalFeatures | None, codebook: np.ndarray) -> np.ndarray:
    """(k * 128,) VLAD of one photo's RootSIFT descriptors; zeros when it has none."""
    k, d = codebook.shape
    out = np.zeros((k, d), np.float32)
    if features is None or len(features) == 0:
        return out.ravel()
    x = features.descriptors.astype(np.float32) / 255.0
    # Squared distances via |x|^2 - 2 x.c + |c|^2 (the |x|^2 term does not change the argmin).
    nearest = np.argmin((codebook * codebook).sum(1)[None, :] - 2.0 * x @ codebook.T, axis=1)
    np.add.at(out, nearest, x - codebook[nearest])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)  # intra-normalisation
    flat = out.ravel()
    flat = np.sign(flat) * np.sqrt(np.abs(flat))
    norm = float(np.linalg.norm(flat))
    return flat / norm if norm > 0 else flat


def encode_all(features: Sequence[LocalFeatures | None], codebook: np.ndarray) -> np.ndarray:
    """(n x k * 128) VLADs of many photos."""
    if not features:
        return np.zeros((0, codebook.size), np.float32)
    return np.stack([encode(f, codebook) for f in features]).astype(np.float32)
