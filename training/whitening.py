"""Learned discriminative whitening of pretrained features: the deployment recipe's training.

Method: Mikolajczyk & Matas, "Improving descriptors for fast tree matching by optimal linear
projection" (ICCV 2007), as used for CNN retrieval by Radenovic, Tolias & Chum, "Fine-tuning CNN
image retrieval with no human annotation" (TPAMI 2018, "learned whitening", Lw):

1. whiten by the *within-object* covariance C_w, estimated from photos of the same object (other
   views, and synthetic listing views of each photo: new backgrounds, light, crops, a phone
   camera), so that directions in which one object's photos vary are shrunk;
2. rotate to the principal directions of the *between-object* scatter of the whitened object
   means, so that the first directions are those that separate objects. A catalogue of n
   objects gives only n - 1 of them; the rest of the `dim` output directions continue with
   the principal directions of all the whitened photos (generic appearance). Keeping them
   matters for objects in no catalogue: squeezed into the n - 1 directions that separate the
   catalogue's objects, an unknown object lands on a catalogued one.

It is closed-form (two eigen-decompositions of d x d matrices, d = 1280 for Lite0), so a model
per cross-fitting fold costs a second, and it cannot forget what pretraining knew: the backbone
is untouched and the projection is fitted to the catalogue at hand. Shrinkage `shrink` adds a
multiple of the mean eigenvalue to C_w (objects with one photo and few views would otherwise
make it singular).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WhiteningFit:
    """`mean` (d,) and `projection` (d x dim), for `matcher.model.Whitening`."""

    mean: np.ndarray
    projection: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    def apply(self, features: np.ndarray) -> np.ndarray:
        """(n x d) pooled features -> (n x dim) L2-normalised embeddings (float32)."""
        x = _l2(np.asarray(features, np.float64)) - self.mean
        return _l2(x @ self.projection).astype(np.float32)


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def default_dim(n_objects: int, feature_dim: int, cap: int = 256, floor: int = 128) -> int:
    """Output size: about one direction per object, at least `floor`, at most `cap` (and the
    feature size). Measured (docs/recognition.md): for 60-80 objects 128 dimensions beat 256
    (fewer generic directions for unrelated photos to come close in); for 3,560 objects 128
    lost 5 points of out-of-fold top-1 against 256 (too few to separate them)."""
    return int(max(2, min(cap, feature_dim, max(floor, n_objects))))


def default_shrink(n_objects: int) -> float:
    """Shrinkage by catalogue size, measured at both ends (docs/recognition.md): 0.05 for 60-80
    objects (with 128 dimensions, against 0.2-0.25 with 256: +0.4 to +9.4 points correct and
    accepted at 1% false alerts), 0.2 for 3,560 objects (with 256 dimensions: 1 point more
    out-of-fold top-1 over the pretrained kNN than 0.05, within the noise; 0.2 is the setting
    measured there first). The boundary, 256 objects, is where the embedding reaches its
    largest size; between 80 and 3,560 objects it is not measured. Re-swept with GeM pooling
    for 60-80 objects (`benchmarks/backbones.py`, with `default_dim`): no other setting of
    16 was better on every photo set, so both rules stand."""
    return 0.05 if n_objects <= 256 else 0.2


def fit_whitening(
    features: np.ndarray,
    groups: Sequence[int] | np.ndarray,
    *,
    dim: int,
    shrink: float = 0.05,
) -> WhiteningFit:
    """Fit on pooled features (n x d) of photos grouped by object id (n,).

    Every photo and every synthetic view of it carries its object's group. Raises ValueError
    with fewer than two groups.
    """
    x = _l2(np.asarray(features, np.float64))
    g = np.asarray(groups)
    labels, inverse = np.unique(g, return_inverse=True)
    if len(labels) < 2:
        raise ValueError("learned whitening needs photos of at least two objects")
    d = x.shape[1]
    mean = x.mean(0)
    xc = x - mean
    counts = np.bincount(inverse, minlength=len(labels)).astype(np.float64)
    sums = np.zeros((len(labels), d))
    np.add.at(sums, inverse, xc)
    means = sums / counts[:, None]
    within = xc - means[inverse]
    cov_w = within.T @ within / len(x)
    cov_w += shrink * np.trace(cov_w) / d * np.eye(d) + 1e-9 * np.eye(d)
    eigval, eigvec = np.linalg.eigh(cov_w)
    whiten = eigvec / np.sqrt(eigval)
    centres = means @ whiten  # object means in the whitened space
    centres -= centres.mean(0)
    _, sv, vt = np.linalg.svd(centres, full_matrices=False)
    between = vt[sv > 1e-9 * max(sv.max(), 1e-30)]
    basis = between
    if len(basis) < dim:  # complete with the whitened photos' principal directions
        rest = xc @ whiten
        rest -= (rest @ basis.T) @ basis
        _, _, vt_rest = np.linalg.svd(rest, full_matrices=False)
        basis = np.vstack([basis, vt_rest[: dim - len(basis)]])
    dim = int(min(dim, len(basis)))
    return WhiteningFit(mean=mean, projection=whiten @ basis[:dim].T)
