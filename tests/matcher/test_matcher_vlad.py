"""VLAD of RootSIFT features (`matcher.vlad`): the first stage for flat objects in clutter."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from artwatch.demo.marketplace import MarketplaceConfig, simulate_listing_photo
from matcher.evidence import (
    CANDIDATES,
    LOCAL_CANDIDATES,
    ReferenceSet,
    candidate_evidence,
    local_nominated,
)
from matcher.scoring import verification_targets
from matcher.verify import EMPTY, extract
from matcher.vlad import encode, encode_all, fit_codebook

SMALL_IN_CLUTTER = MarketplaceConfig(backgrounds=("clutter",), object_height=(0.2, 0.3),
                                     p_watermark=0.0, p_caption=0.0)


def _tablet(seed: int, size: int = 320) -> Image.Image:
    """A flat object with texture of its own (random glyph strokes) on a plain backdrop."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 128, np.uint8)
    cells = rng.integers(40, 220, (size // 16, size // 16)).astype(np.uint8)
    face = np.kron(cells, np.ones((8, 8), np.uint8))  # blocks of 8 x 8 pixels
    q = size // 4
    img[q : q + face.shape[0], q : q + face.shape[1]] = face[..., None]
    return Image.fromarray(img)


def test_a_flat_object_small_in_clutter_is_nearest_to_its_own_catalogue_photo() -> None:
    catalogue = [_tablet(seed) for seed in range(8)]
    local = [extract(im) for im in catalogue]
    codebook = fit_codebook(local, words=16)
    refs = encode_all(local, codebook)
    assert refs.shape == (8, 16 * 128)
    assert np.allclose(np.linalg.norm(refs, axis=1), 1.0, atol=1e-5)
    rng = np.random.default_rng(0)
    right = 0
    for target in range(len(catalogue)):  # three phone photos of each, the object small
        for _ in range(3):
            photo = simulate_listing_photo(catalogue[target], rng, config=SMALL_IN_CLUTTER)
            right += int(np.argmax(refs @ encode(extract(photo), codebook)) == target)
    assert right >= 20  # of 24; chance is 3


def test_no_features_encode_to_zero_and_a_codebook_needs_descriptors() -> None:
    codebook = np.eye(4, 128, dtype=np.float32)
    assert not encode(EMPTY, codebook).any() and not encode(None, codebook).any()
    with pytest.raises(ValueError, match="needs at least 64 local descriptors"):
        fit_codebook([EMPTY, None])


def test_the_local_first_stage_nominates_what_the_global_embedding_misses_and_verifies_it(
) -> None:
    rng = np.random.default_rng(1)
    n = 50
    emb = rng.standard_normal((n, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    vlads = rng.standard_normal((n, 32)).astype(np.float32)
    vlads /= np.linalg.norm(vlads, axis=1, keepdims=True)
    refs = ReferenceSet(emb, np.arange(n), np.zeros(n, np.float32), np.zeros(n, np.uint64),
                        local=vlads)
    far = np.array([np.iinfo(np.uint64).max], np.uint64)  # 64 bits from every catalogue hash
    query = emb[:1] + 0.01  # globally: object 0 and its neighbours
    plain = candidate_evidence(query, refs, far, far, temperature=0.05)
    target = next(o for o in range(n) if o not in plain.objects[0])  # the global stage misses
    assert not local_nominated(plain.objects, plain.features).any()

    cands = candidate_evidence(query, refs, far, far, temperature=0.05,
                               query_local=vlads[target : target + 1])
    row = cands.objects[0].tolist()
    assert target in row and row[:CANDIDATES] == plain.objects[0][:CANDIDATES].tolist()
    ci = row.index(target)
    assert cands.column("local_sim")[0, ci] == pytest.approx(1.0, abs=1e-5)
    nominated = local_nominated(cands.objects, cands.features)
    assert nominated[0, ci] and nominated.sum() == LOCAL_CANDIDATES
    # Verified whatever the global probability says (here: nothing reaches the floor).
    targets = verification_targets({"verify_floor": 0.5}, cands.objects,
                                   np.zeros(cands.objects.shape), cands.features)
    assert (0, ci) in targets and len(targets) == LOCAL_CANDIDATES

    # A bundle calibrated with more nominations (`Bundle.local_candidates`) gets as many.
    more = LOCAL_CANDIDATES + 4
    wider = candidate_evidence(query, refs, far, far, temperature=0.05,
                               query_local=vlads[target : target + 1], local_candidates=more)
    assert wider.objects.shape[1] == cands.objects.shape[1] + 4
    assert target in wider.objects[0]
    assert local_nominated(wider.objects, wider.features, more).sum() == more
    assert len(verification_targets({"verify_floor": 0.5}, wider.objects,
                                    np.zeros(wider.objects.shape), wider.features, more)) == more
