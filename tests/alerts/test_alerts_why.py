"""The one line a reviewer reads under a candidate: which evidence, with its figures."""

from __future__ import annotations

from alerts.model import Candidate


def _candidate(method: str, scores: dict) -> Candidate:
    return Candidate(match_id=1, object_id=2, accession="A-1", collection="c", title=None,
                     object_url=None, score=0.97, method=method, scores=scores,
                     status="new", model="m", matched_photo=None, catalogue_photo=None,
                     saliency=None)


def test_a_verified_candidate_names_keypoints_similarity_and_colour_gap() -> None:
    why = _candidate("verified", {"inliers": 41, "similarity": 0.873, "colour_gap": 0.04,
                                  "phash_distance": None}).why
    assert why == ("matching local features (geometrically verified) "
                   "(41 matching keypoints, similarity 0.87, colour gap 0.04)")


def test_a_retrieval_candidate_without_verification_shows_no_colour_gap() -> None:
    why = _candidate("retrieval", {"similarity": 0.8, "colour_gap": None}).why
    assert why == "catalogue retrieval (embedding similarity) (similarity 0.80)"
