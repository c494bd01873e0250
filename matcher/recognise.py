"""Recognise catalogued objects in listing photos and decide, per listing, whether to alert.

Per photo (`recognise_photos`): the bundle's embedding, the catalogue index's nearest photos
and their distractor background, the photo's perceptual hash against the catalogue's, local
features verified against the best candidates of plausible photos, all turned into one
calibrated probability per candidate object by the bundle's score (`matcher.engine`). Written
as `predictions` (every candidate with its evidence) plus the photo's embedding, kept for
retro-hunts.

Per listing (`score_listing`): photos that are the same picture count once; the others add up
(`matcher.scoring.fuse_listing`); the best object's listing probability is held against the
bundle's threshold for the configured operating point and the listing's calibration cell (its
number of distinct photos, whether its decisive photo looks like a catalogue photo, and the
collection of its best object: see `matcher.scoring`). Every decision is a
`listing_decisions` row; an alert writes the listing's candidates (best first, those below
`match_candidate_floor` left out) as `matches`, so the first candidate a reviewer sees is the
ranking's top-1. Everything is an upsert keyed as the schema says, so a batch that runs twice
writes nothing new, and a reviewer's decision on a match is never overwritten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import torch
from psycopg.types.json import Jsonb

from artwatch.db.retry import DB_UNAVAILABLE
from artwatch.images import ImageStore
from artwatch.images.records import record_image
from matcher.bundle import Bundle
from matcher.catalogue_index import CatalogueIndex
from matcher.crop import Box
from matcher.decode import photos_of
from matcher.engine import PhotoScores, score_photos
from matcher.evidence import CHUNK, PHASH_NEAR
from matcher.failures import mark_unreadable, record_scored
from matcher.indexing import store_embeddings
from matcher.inference import PhotoPredictor
from matcher.overlay import activation_overlay, keypoint_overlay
from matcher.scoring import (
    cell_of,
    check_spec,
    duplicate_groups,
    fuse_listing,
    look_of,
    operating_point,
    photo_looks,
    split_cell,
    target_not_reached,
    threshold_for,
)

log = logging.getLogger(__name__)
ORIGINS = ("live", "retro-hunt")
# A batch's stages: read its photos' rows, decode + model, evidence and score, write
# predictions, decide listings.
STAGES = ("select_s", "model_s", "evidence_s", "write_s", "listings_s")
VERIFIED_INLIERS = 12  # homography inliers from which evidence is called "verified" (display)


@dataclass(frozen=True)
class MatchPolicy:
    """How predictions become alerts (from settings)."""

    top_k: int = 5
    operating_point: str = "precision_0.95"
    candidate_floor: float = 0.01


class NoActiveBundle(RuntimeError):
    """No model bundle is active, so nothing can be recognised yet."""


def active_bundle_row(conn: psycopg.Connection) -> dict[str, Any] | None:
    return conn.execute("SELECT id, name, path FROM bundles WHERE active").fetchone()


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def _hashes(row: dict[str, Any]) -> tuple[int, int]:
    """(pHash, mirror-image pHash) of a stored photo; photos stored before the mirror hash was
    recorded compare their plain hash only."""
    plain = int(row["phash"])
    mirror = row.get("phash_mirror")
    return plain, int(mirror) if mirror is not None else plain


class Recogniser:
    """A loaded bundle + catalogue index, ready to score photos and decide listings."""

    def __init__(self, bundle: Bundle, bundle_id: int, index: CatalogueIndex,
                 store: ImageStore, policy: MatchPolicy,
                 predictor: PhotoPredictor | None = None) -> None:
        self.bundle = bundle
        self.bundle_id = bundle_id
        self.index = index
        self.store = store
        self.policy = policy
        # How a batch of stored photos becomes embeddings (decoder pool + model).
        self.predictor = predictor or PhotoPredictor(bundle, store)
        self.spec = check_spec(bundle.score)
        self.point = operating_point(bundle.thresholds, policy.operating_point)
        if note := target_not_reached(policy.operating_point, self.point):
            log.warning("%s", note)
        # Wall seconds per stage of the last `handle` (the worker logs them with the batch):
        # where a batch's time goes is what tells a slow matcher's cause.
        self.timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @classmethod
    def load(cls, conn: psycopg.Connection, store: ImageStore, policy: MatchPolicy,
             device: str = "cpu", cache_dir: Any = None, *, decode_threads: int = 0,
             model_batch: int = 64, retrieval_chunk: int = CHUNK,
             catalogue_dtype: str = "float32") -> Recogniser:
        """The active bundle and its index; clear errors when either cannot serve.

        Raises NoActiveBundle, `matcher.bundle.BundleError`, `matcher.scoring.ScoreSpecError`,
        `matcher.scoring.OperatingPointError` (naming the setting and the valid points) and
        `matcher.catalogue_index.NotIndexed`.
        """
        row = active_bundle_row(conn)
        if row is None:
            raise NoActiveBundle("no active model bundle (artwatch models activate NAME)")
        bundle = Bundle.load(row["path"], device=device)
        check_spec(bundle.score)
        operating_point(bundle.thresholds, policy.operating_point)
        index = CatalogueIndex.load(conn, int(row["id"]), bundle, device=device, store=store,
                                    cache_dir=cache_dir, dtype=catalogue_dtype,
                                    chunk=retrieval_chunk)
        index.require(row["name"])
        predictor = PhotoPredictor(bundle, store, threads=decode_threads, model_batch=model_batch)
        log.info("loaded bundle %s, %d indexed catalogue photos of %d objects", row["name"],
                 len(index), len(set(index.object_ids.tolist())))
        return cls(bundle, int(row["id"]), index, store, policy, predictor)

    # --- photos -------------------------------------------------------------------------

    def score(self, embeddings: np.ndarray, phashes: Sequence[tuple[int, int]],
              shas: Sequence[str]) -> PhotoScores:
        """The engine on a batch; the few photos it verifies are decoded again from the store
        (full size, for local features) when it asks for them."""

        def picture(qi: int) -> Any:
            try:
                return self.store.open_rgb(shas[qi])
            except (OSError, ValueError) as exc:  # gone since: scored without verification
                log.warning("photo %s unreadable for verification: %s", shas[qi], exc)
                return None

        return score_photos(self.bundle, self.index.refs, embeddings, phashes,
                            query_picture=picture, reference_local=self.index.local_features)

    def payload(self, scores: PhotoScores, qi: int, embedding: np.ndarray) -> dict[str, Any]:
        """A photo's `predictions.topk`: every candidate, best first, with its evidence."""
        candidates = []
        for obj, p, ci in scores.ranked(qi):
            ver = scores.verifications.get((qi, ci))
            reuse = scores.feature(qi, ci, "reuse")
            row = int(scores.candidates.ref_rows[qi, ci])
            candidates.append({
                "object_id": obj,
                "p": round(p, 6),
                "similarity": round(scores.feature(qi, ci, "sim"), 5),
                "normalised": round(scores.feature(qi, ci, "sim_norm"), 5),
                "margin": round(scores.feature(qi, ci, "margin"), 5),
                "local_similarity": round(scores.feature(qi, ci, "local_sim"), 5),
                "phash_distance": (round((1.0 - reuse) * PHASH_NEAR) if reuse > 0 else None),
                "inliers": ver.h_inliers if ver else None,
                "inliers_3d": ver.f_inliers if ver else None,
                "colour_gap": round(ver.colour_gap, 3) if ver else None,
                "object_image_id": int(self.index.image_ids[row]) if row >= 0 else None,
            })
        return {"candidates": candidates, "bundle_score": "calibrated-evidence"}

    def recognise_photos(self, conn: psycopg.Connection, image_ids: Iterable[int]) -> int:
        """Write predictions (and embeddings) for photos that have none under this bundle."""
        ids = sorted({int(i) for i in image_ids})
        if not ids:
            return 0
        clock = time.perf_counter()
        rows = conn.execute(
            """
            SELECT i.id, i.sha256, i.phash, i.phash_mirror, i.width, i.height FROM images i
             WHERE i.id = ANY(%s) AND NOT EXISTS (
                   SELECT 1 FROM predictions p WHERE p.image_id = i.id AND p.bundle_id = %s)
             ORDER BY i.id
            """,
            (ids, self.bundle_id),
        ).fetchall()
        self.timings["select_s"] += time.perf_counter() - clock
        clock = time.perf_counter()
        # Decoded in a thread pool at about the model's resolution, overlapped with the model
        # (matcher.inference); a photo that can never be decoded is recorded failed once.
        batch = self.predictor.predict(photos_of(rows))
        self.timings["model_s"] += time.perf_counter() - clock
        mark_unreadable(conn, batch.unreadable)
        if batch.retry:
            log.warning("images %s could not be read now; the sweeper retries them", batch.retry)
        by_id = {int(row["id"]): row for row in rows}
        kept = [by_id[i] for i in batch.ids]
        if not kept:
            return 0
        phashes = [_hashes(r) for r in kept]
        clock = time.perf_counter()
        scores = self.score(batch.embeddings, phashes, [r["sha256"].strip() for r in kept])
        self.timings["evidence_s"] += time.perf_counter() - clock
        clock = time.perf_counter()
        ids = [int(r["id"]) for r in kept]
        self._write_predictions(conn, ids, batch.embeddings, phashes, scores,
                                wholes=[batch.wholes.get(i) for i in ids],
                                crops=[batch.crops.get(i) for i in ids])
        self.timings["write_s"] += time.perf_counter() - clock
        return len(kept)

    def rescore_photos(self, conn: psycopg.Connection, image_ids: Sequence[int]) -> list[int]:
        """Score stored photos again from their stored embeddings (a retro-hunt: the catalogue
        changed, the model did not). Returns the ids that had an embedding under the bundle."""
        rows = conn.execute(
            """
            SELECT e.image_id, e.vector, i.sha256, i.phash, i.phash_mirror FROM embeddings e
              JOIN images i ON i.id = e.image_id
             WHERE e.bundle_id = %s AND e.image_id = ANY(%s)
             ORDER BY e.image_id
            """,
            (self.bundle_id, list(image_ids)),
        ).fetchall()
        if not rows:
            return []
        embeddings = np.stack([_vector(r["vector"]) for r in rows])
        phashes = [_hashes(r) for r in rows]
        scores = self.score(embeddings, phashes, [r["sha256"].strip() for r in rows])
        ids = [int(r["image_id"]) for r in rows]
        self._write_predictions(conn, ids, embeddings, phashes, scores, replace=True)
        return ids

    def _write_predictions(self, conn: psycopg.Connection, ids: list[int],
                           embeddings: np.ndarray, phashes: Sequence[tuple[int, int]],
                           scores: PhotoScores, replace: bool = False,
                           wholes: Sequence[np.ndarray | None] | None = None,
                           crops: Sequence[Box | None] | None = None) -> None:
        """Store each photo's `predictions.topk` (and, first time, its embeddings). `crops`:
        the box each photo was embedded from (None: the whole photo), recorded as the topk's
        `crop` for the reviewer's picture; a rescore keeps the box its model pass recorded."""
        params = []
        for qi, image_id in enumerate(ids):
            payload = self.payload(scores, qi, embeddings[qi])
            if crops is not None and self.bundle.crops_queries:
                box = crops[qi]
                payload["crop"] = list(box.as_tuple()) if box is not None else None
            best = payload["candidates"][0]["p"] if payload["candidates"] else 0.0
            hits = [{"object_id": c["object_id"], "object_image_id": c["object_image_id"],
                     "distance": c["phash_distance"]}
                    for c in payload["candidates"] if c["phash_distance"] is not None]
            params.append((image_id, self.bundle_id, Jsonb(payload), best, Jsonb(hits)))
        conflict = ("DO UPDATE SET topk = EXCLUDED.topk || CASE WHEN predictions.topk ? 'crop' "
                    "THEN jsonb_build_object('crop', predictions.topk->'crop') ELSE '{}' END, "
                    "best_score = EXCLUDED.best_score, "
                    "phash_hits = EXCLUDED.phash_hits, created_at = now()"
                    if replace else "DO NOTHING")
        with conn.transaction():
            conn.cursor().executemany(
                f"""
                INSERT INTO predictions (image_id, bundle_id, topk, best_score, phash_hits)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (image_id, bundle_id) {conflict}
                """,
                params,
            )
            if not replace:
                store_embeddings(conn, self.bundle_id, ids, embeddings, wholes=wholes)

    # --- listings -----------------------------------------------------------------------

    def score_listing(self, conn: psycopg.Connection, listing_id: int,
                      origin: str = "live") -> list[dict[str, Any]]:
        """Decide one listing from its photos' predictions; return new or changed matches."""
        photos = conn.execute(
            """
            SELECT DISTINCT ON (li.image_id) li.image_id, p.topk, e.vector, e.whole, i.phash
              FROM listing_images li
              JOIN predictions p ON p.image_id = li.image_id AND p.bundle_id = %s
              JOIN images i ON i.id = li.image_id
              LEFT JOIN embeddings e ON e.image_id = li.image_id AND e.bundle_id = %s
             WHERE li.listing_id = %s AND li.status = 'stored'
             ORDER BY li.image_id
            """,
            (self.bundle_id, self.bundle_id, listing_id),
        ).fetchall()
        if not photos:
            return []
        dim = self.bundle.embedding_dim
        embeddings = np.stack([_vector(p["vector"]) if p["vector"] is not None
                               else np.zeros(dim, np.float32) for p in photos])
        # The same picture is a question about whole pictures: a photo embedded from its
        # object crop is compared by its whole picture's embedding (`embeddings.whole`).
        wholes = np.stack([_vector(p["whole"]) if p["whole"] is not None else embeddings[i]
                           for i, p in enumerate(photos)])
        groups = duplicate_groups(wholes, [int(p["phash"]) for p in photos])
        per_photo = [{int(c["object_id"]): float(c["p"]) for c in p["topk"].get("candidates", [])}
                     for p in photos]
        fused = fuse_listing(self.spec, per_photo, groups)
        distinct = len(set(groups))
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
        best_obj, best = ranked[0] if ranked else (None, 0.0)
        decisive = max(range(len(photos)), key=lambda i: per_photo[i].get(best_obj, 0.0))
        if not self.spec.get("look"):  # a score without look cells
            p_look = None
        elif photos[decisive]["vector"] is None:  # no stored embedding, no look: the stricter
            p_look = 1.0  # catalogue cell decides
        else:
            p_look = float(photo_looks(self.spec, embeddings[decisive : decisive + 1])[0])
        look = look_of(p_look)
        collection = None  # looked up only where the point has cells per collection
        if best_obj is not None and any(split_cell(key)[2] is not None
                                        for key in self.point.get("buckets") or {}):
            collection = conn.execute("SELECT collection FROM objects WHERE id = %s",
                                      (best_obj,)).fetchone()["collection"]
        cell = cell_of(self.point, distinct, look, collection)
        threshold = threshold_for(self.point, distinct, look, collection)
        alerted = best >= threshold
        conn.execute(
            """
            INSERT INTO listing_decisions (listing_id, bundle_id, score, object_id, photos,
                                           operating_point, threshold, alerted, cell)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (listing_id, bundle_id) DO UPDATE SET
                score = EXCLUDED.score, object_id = EXCLUDED.object_id,
                photos = EXCLUDED.photos, operating_point = EXCLUDED.operating_point,
                threshold = EXCLUDED.threshold, alerted = EXCLUDED.alerted,
                cell = EXCLUDED.cell, decided_at = now()
            """,
            (listing_id, self.bundle_id, float(best), best_obj, distinct,
             self.policy.operating_point, None if np.isinf(threshold) else float(threshold),
             bool(alerted), cell),
        )
        if not alerted:
            return []
        promise = {**(self.point.get("promise") or {}).get(cell, {}), "cell": cell}
        written = []
        shown = [(o, p) for o, p in ranked if p >= self.policy.candidate_floor or o == best_obj]
        activations: dict[int, int | None] = {}  # image id -> its picture, drawn once
        for rank, (obj, p) in enumerate(shown[: self.policy.top_k], start=1):
            evidence = self._evidence(conn, photos, obj, p, threshold, promise, activations)
            row = conn.execute(
                """
                INSERT INTO matches (listing_id, object_id, bundle_id, score, rank, evidence,
                                     origin)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (listing_id, object_id, coalesce(bundle_id, 0)) DO UPDATE
                   SET score = EXCLUDED.score, rank = EXCLUDED.rank,
                       evidence = EXCLUDED.evidence, updated_at = now()
                 WHERE (matches.score, matches.rank) IS DISTINCT FROM
                       (EXCLUDED.score, EXCLUDED.rank)
                RETURNING id
                """,
                (listing_id, obj, self.bundle_id, float(p), rank, Jsonb(evidence), origin),
            ).fetchone()
            if row is not None:  # new or changed; an unchanged match is not news
                written.append({"object_id": obj, "score": p, "rank": rank,
                                "match_id": int(row["id"])})
        return written

    def _keypoints_image(self, conn: psycopg.Connection, listing_image: int,
                         catalogue_image: int) -> int | None:
        """images.id of the matched-keypoints picture of two photos (stored once), or None."""
        shas = {int(r["id"]): r["sha256"].strip() for r in conn.execute(
            "SELECT id, sha256 FROM images WHERE id = ANY(%s)",
            ([listing_image, catalogue_image],)).fetchall()}
        try:
            drawn = keypoint_overlay(self.store.open_rgb(shas[listing_image]),
                                     self.store.open_rgb(shas[catalogue_image]),
                                     self.bundle.query_side)
            if drawn is None:
                return None
            return record_image(conn, self.store.put(drawn[0]))
        except (KeyError, OSError, ValueError) as exc:  # a photo gone or unreadable: no picture
            log.warning("no keypoint picture for images %s/%s: %s", listing_image,
                        catalogue_image, exc)
            return None

    def _activation_image(self, conn: psycopg.Connection, image_id: int,
                          topk: dict[str, Any]) -> int | None:
        """images.id of the listing photo's activation picture (`activation_overlay`: where
        the model looked, and the box it recognised the photo from), or None when the photo
        cannot be read now. One backbone pass: drawn for alerted candidates only."""
        row = conn.execute("SELECT sha256 FROM images WHERE id = %s", (image_id,)).fetchone()
        try:
            if row is None:
                raise KeyError(image_id)
            photo = self.store.open_rgb(row["sha256"].strip())
            pixels = torch.from_numpy(self.bundle.preprocess.fit(photo)[None])
            maps, _ = self.bundle.forward_maps(pixels)
            known = "crop" in topk
            drawn = activation_overlay(photo, maps[0], self.bundle.preprocess,
                                       topk.get("crop"), (topk.get("crop") is not None)
                                       if known else None)
            return record_image(conn, self.store.put(drawn))
        except (KeyError, OSError, ValueError) as exc:  # gone or unreadable: no picture
            log.warning("no activation picture for image %s: %s", image_id, exc)
            return None

    def _evidence(self, conn: psycopg.Connection, photos: list[dict[str, Any]], obj: int,
                  listing_p: float, threshold: float, promise: dict[str, Any],
                  activations: dict[int, int | None] | None = None) -> dict[str, Any]:
        """`matches.evidence` (alerts/README.md): the photo that showed the object best, its
        activation picture, and for a verified candidate the picture of its matching
        keypoints. `activations` caches the pictures across one listing's candidates."""
        best_photo, best_c = None, None
        for p in photos:
            for c in p["topk"].get("candidates", []):
                if int(c["object_id"]) == obj and (best_c is None or c["p"] > best_c["p"]):
                    best_photo, best_c = p, c
        assert best_photo is not None and best_c is not None
        inliers = best_c.get("inliers") or 0
        method = ("verified" if inliers >= VERIFIED_INLIERS else
                  "phash" if (best_c.get("phash_distance") or 99) <= 4 else "retrieval")
        keypoints = None
        if inliers >= VERIFIED_INLIERS and best_c.get("object_image_id"):
            keypoints = self._keypoints_image(conn, int(best_photo["image_id"]),
                                              int(best_c["object_image_id"]))
        image_id = int(best_photo["image_id"])
        cache = {} if activations is None else activations
        if image_id not in cache:
            cache[image_id] = self._activation_image(conn, image_id, best_photo["topk"])
        saliency = cache[image_id]
        return {
            **({"keypoints_image_id": keypoints} if keypoints else {}),
            **({"saliency_image_id": saliency} if saliency else {}),
            "image_id": int(best_photo["image_id"]),
            "method": method,
            "object_image_id": best_c.get("object_image_id"),
            "scores": {
                "listing": round(listing_p, 6),
                "photo": best_c["p"],
                "similarity": best_c.get("similarity"),
                "inliers": best_c.get("inliers"),
                "colour_gap": best_c.get("colour_gap"),
                "phash_distance": best_c.get("phash_distance"),
            },
            "alerted": listing_p >= threshold,
            "threshold": None if np.isinf(threshold) else round(float(threshold), 6),
            "operating_point": self.policy.operating_point,
            "promised_false_alerts_per_1000": promise.get("per_1000"),
            "calibration_cell": promise.get("cell"),
        }

    def handle(self, conn: psycopg.Connection,
               requests: Sequence[tuple[Sequence[int], int | None, str]]) -> dict[str, Any]:
        """One batch of task requests (image ids, listing id, origin): recognise all photos
        at once, then decide their listings (live wins when both origins ask for one)."""
        image_ids = {int(i) for ids, _, _ in requests for i in ids}
        self.timings = dict.fromkeys(STAGES, 0.0)
        recognised = self.recognise_photos(conn, image_ids)
        clock = time.perf_counter()
        listings: dict[int, str] = {}

        def want(listing: int, origin: str) -> None:
            listings[listing] = "live" if "live" in (origin, listings.get(listing)) else origin

        for ids, lid, origin in requests:
            if lid is not None:
                want(lid, origin)
            else:  # a photo enqueued without its listing: decide every listing showing it
                for r in conn.execute(
                    "SELECT DISTINCT listing_id FROM listing_images WHERE image_id = ANY(%s)",
                    (list(ids),),
                ).fetchall():
                    want(int(r["listing_id"]), origin)
        match_ids: list[int] = []
        scored, failed = [], {}
        for lid in sorted(listings):
            try:
                match_ids += [m["match_id"] for m in self.score_listing(conn, lid, listings[lid])]
                scored.append(lid)
            except DB_UNAVAILABLE:
                raise  # the whole batch waits for the database and is retried
            except Exception as exc:  # one listing's bug does not cost the others their scores
                log.exception("listing %s could not be scored", lid)
                failed[lid] = f"{type(exc).__name__}: {exc}"[:500]
        record_scored(conn, self.bundle_id, scored, failed)
        self.timings["listings_s"] += time.perf_counter() - clock
        return {"photos": recognised, "listings": len(listings), "match_ids": match_ids,
                "listing_ids": sorted(listings),
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}
