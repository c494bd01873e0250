"""The recognition engine without storage: embeddings -> evidence -> calibrated photo scores.

`matcher.recognise` wraps it with PostgreSQL and the image store; the recognition benchmark
and the tests call it directly. Everything it computes comes from the bundle (whitening,
score, thresholds) and the catalogue index (`matcher.evidence.ReferenceSet`), so a photo is
scored here exactly as training calibrated it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image

from matcher.bundle import Bundle
from matcher.evidence import (
    FEATURES,
    Candidates,
    ReferenceSet,
    as_hash_array,
    backgrounds,
    candidate_evidence,
    set_verification,
)
from matcher.scoring import (
    check_spec,
    global_probabilities,
    photo_probabilities,
    verification_targets,
)
from matcher.verify import LocalFeatures, Verification, best_verification, extract_query
from matcher.vlad import encode_all

# Given a reference row of the index: that catalogue photo's local features (cached).
ReferenceLocal = Callable[[int], LocalFeatures | None]
# Given a query photo's position in the batch: its picture (decoded again only if verified).
QueryPicture = Callable[[int], Image.Image | None]


@dataclass
class PhotoScores:
    """Per photo of a batch: candidates (object ids), their evidence rows, probabilities.

    `probabilities` (n x c) are calibrated P(photo shows candidate); `verifications` maps
    (photo, candidate) to the verification that ran (for the reviewer's overlay).
    """

    candidates: Candidates
    probabilities: np.ndarray
    verifications: dict[tuple[int, int], Verification]

    def ranked(self, photo: int) -> list[tuple[int, float, int]]:
        """[(object id, probability, candidate column)] best first, for one photo."""
        row = [(int(o), float(p), ci) for ci, (o, p) in enumerate(
            zip(self.candidates.objects[photo], self.probabilities[photo], strict=True))
            if o >= 0]
        return sorted(row, key=lambda t: -t[1])

    def feature(self, photo: int, column: int, name: str) -> float:
        return float(self.candidates.features[photo, column, FEATURES.index(name)])


def reference_set(bundle: Bundle, embeddings: np.ndarray, objects: np.ndarray,
                  phashes: Sequence[int], background: np.ndarray | None = None,
                  device: str = "cpu",
                  local: Sequence[LocalFeatures | None] | None = None) -> ReferenceSet:
    """A `ReferenceSet` of catalogue photo embeddings under `bundle` (background computed
    against the bundle's distractor bank when not given; with the photos' `local` features
    and a bundle with a local first stage, their VLADs too)."""
    import torch

    emb = np.asarray(embeddings, np.float32)
    if background is None:
        background = backgrounds(emb, bundle.bank)
    matrix = torch.from_numpy(emb.copy()).to(device) if device != "cpu" else emb
    vlads = (encode_all(list(local), bundle.codebook)
             if local is not None and bundle.codebook is not None else None)
    return ReferenceSet(matrix, np.asarray(objects, np.int64), np.asarray(background, np.float32),
                        as_hash_array(list(phashes)), local=vlads)


def _extract_from(query_picture: QueryPicture | None, side: int, qi: int
                  ) -> LocalFeatures | None:
    picture = query_picture(qi) if query_picture is not None else None
    return extract_query(picture, side) if picture is not None else None


def score_photos(
    bundle: Bundle,
    refs: ReferenceSet,
    embeddings: np.ndarray,
    phashes: Sequence[tuple[int, int]],
    *,
    query_picture: QueryPicture | None = None,
    reference_local: ReferenceLocal | None = None,
) -> PhotoScores:
    """Calibrated candidate probabilities for a batch of query photos.

    `embeddings` (n x d) from `bundle`, `phashes` [(pHash, mirror pHash)] per photo. The
    geometric verification runs where the bundle's score says (plausible photos' best
    candidates, and the local first stage's nominations) and only when both callables are
    given. With a local first stage (the bundle's codebook and `refs.local`) every photo's
    local features are extracted, for its VLAD.
    """
    spec = check_spec(bundle.score)
    local: dict[int, LocalFeatures | None] = {}

    def local_of(qi: int) -> LocalFeatures | None:
        if qi not in local:
            local[qi] = _extract_from(query_picture, bundle.query_side, qi)
        return local[qi]

    query_local = None
    if bundle.codebook is not None and refs.local is not None and query_picture is not None:
        # Every photo's local features, decoded and extracted on threads (Pillow and OpenCV
        # release the GIL; OpenCV itself runs one thread per call, `matcher.verify`).
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            extract_one = partial(_extract_from, query_picture, bundle.query_side)
            local.update(enumerate(pool.map(extract_one, range(len(embeddings)))))
        query_local = encode_all([local[qi] for qi in range(len(embeddings))], bundle.codebook)
    cands = candidate_evidence(
        np.asarray(embeddings, np.float32), refs,
        as_hash_array([h for h, _ in phashes]), as_hash_array([m for _, m in phashes]),
        temperature=float(spec["temperature"]), candidates=int(spec.get("candidates", 5)),
        query_local=query_local, local_candidates=bundle.local_candidates,
    )
    verifications: dict[tuple[int, int], Verification] = {}
    if "verified" in spec and query_picture is not None and reference_local is not None:
        p_global = np.where(cands.objects >= 0, global_probabilities(spec, cands.features), 0.0)
        for qi, ci in verification_targets(spec, cands.objects, p_global, cands.features,
                                           bundle.local_candidates):
            if local_of(qi) is None:
                continue
            usable = [(row, ref) for row in cands.verification_rows(qi, ci)
                      if (ref := reference_local(row)) is not None]
            if not usable:
                continue
            best, result = best_verification(local[qi], [ref for _, ref in usable])
            cands.ref_rows[qi, ci] = usable[best][0]  # the photo the keypoint picture shows
            verifications[(qi, ci)] = result
            set_verification(cands, qi, ci, result.features())
    probs = photo_probabilities(spec, cands.features, cands.objects)
    return PhotoScores(cands, probs, verifications)
