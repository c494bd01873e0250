"""Recognise catalogued objects in listing photos and decide which listings to alert on.

Per photo, two signals from one forward pass: the classifier's temperature-calibrated
probability over the bundle's objects, and cosine similarity of the photo's embedding to
every catalogued photo (best per object), which also reaches objects added after training.
A perceptual-hash hit (the listing reuses a museum photo) is evidence on its own.

Per photo and object, the alert score is `matcher.scoring.combine` of the two signals under the
bundle's `score` spec (the same function training set the thresholds on; classifier probability
alone for bundles without one). Per listing, an object's score is its best photo's alert score;
the listing is suspicious when its best object passes the bundle's threshold for the configured
operating point (calibrated on the test split by training), and then its top-k objects are
written as candidate matches for the reviewer. Everything is an upsert keyed as the schema
says, so a batch that runs twice writes nothing new, and a reviewer's decision on a match is
never overwritten.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from artwatch.db.retry import DB_UNAVAILABLE
from artwatch.images import ImageStore
from matcher.bundle import Bundle, Predictions
from matcher.catalogue_index import CatalogueIndex
from matcher.decode import photos_of
from matcher.failures import mark_unreadable, record_scored
from matcher.indexing import store_embeddings
from matcher.inference import PhotoPredictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatchPolicy:
    """How predictions become alerts (from settings)."""

    top_k: int = 5
    operating_point: str = "precision_0.95"
    retrieval_threshold: float = 0.92  # cosine, for objects the classifier does not know
    phash_max_distance: int = 6


class NoActiveBundle(RuntimeError):
    """No model bundle is active, so nothing can be recognised yet."""


def active_bundle_row(conn: psycopg.Connection) -> dict[str, Any] | None:
    return conn.execute("SELECT id, name, path FROM bundles WHERE active").fetchone()


class Recogniser:
    """A loaded bundle + catalogue index + perceptual hashes, ready to score photos."""

    def __init__(self, bundle: Bundle, bundle_id: int, index: CatalogueIndex,
                 accession_ids: dict[str, int], catalogue_hashes: np.ndarray,
                 store: ImageStore, policy: MatchPolicy,
                 predictor: PhotoPredictor | None = None) -> None:
        self.bundle = bundle
        self.bundle_id = bundle_id
        self.index = index
        self.store = store
        self.policy = policy
        # How a batch of stored photos becomes model outputs (decoder pool + model).
        self.predictor = predictor or PhotoPredictor(bundle, store)
        # class i of the bundle -> objects.id (None when the object left the catalogue)
        self.class_object_ids = [accession_ids.get(a) for a in bundle.objects]
        self.known_objects = {o for o in self.class_object_ids if o is not None}
        self.catalogue_hashes = catalogue_hashes  # rows: (object_id, image_id, phash as uint64)
        threshold = bundle.thresholds.get(policy.operating_point)
        self.threshold = float(threshold) if threshold is not None else math.inf

    @classmethod
    def load(cls, conn: psycopg.Connection, store: ImageStore, policy: MatchPolicy,
             device: str = "cpu", *, decode_threads: int = 0, model_batch: int = 64,
             retrieval_chunk: int = 65_536, catalogue_dtype: str = "float32") -> Recogniser:
        row = active_bundle_row(conn)
        if row is None:
            raise NoActiveBundle("no active model bundle (artwatch models activate NAME)")
        bundle = Bundle.load(row["path"], device=device)
        index = CatalogueIndex.load(conn, int(row["id"]), device=device, dtype=catalogue_dtype,
                                    chunk=retrieval_chunk)
        predictor = PhotoPredictor(bundle, store, threads=decode_threads, model_batch=model_batch)
        accessions = {
            r["accession"]: int(r["id"])
            for r in conn.execute("SELECT id, accession FROM objects").fetchall()
        }
        hashes = conn.execute(
            "SELECT oi.object_id, i.id, i.phash FROM object_images oi "
            "JOIN images i ON i.id = oi.image_id"
        ).fetchall()
        table = np.array(
            [(r["object_id"], r["id"], r["phash"] & 0xFFFFFFFFFFFFFFFF) for r in hashes],
            dtype=np.uint64,
        ).reshape(-1, 3)
        log.info("loaded bundle %s (%d classes), %d indexed catalogue photos",
                 row["name"], len(bundle.objects), len(index))
        return cls(bundle, int(row["id"]), index, accessions, table, store, policy, predictor)

    # --- photos -------------------------------------------------------------------------

    def _phash_hits(self, phash: int) -> list[dict[str, int]]:
        if len(self.catalogue_hashes) == 0:
            return []
        xor = self.catalogue_hashes[:, 2] ^ np.uint64(phash & 0xFFFFFFFFFFFFFFFF)
        dist = np.bitwise_count(xor)
        near = np.flatnonzero(dist <= self.policy.phash_max_distance)
        best: dict[int, dict[str, int]] = {}
        for i in near[np.argsort(dist[near], kind="stable")]:
            obj = int(self.catalogue_hashes[i, 0])
            best.setdefault(obj, {"object_id": obj,
                                  "object_image_id": int(self.catalogue_hashes[i, 1]),
                                  "distance": int(dist[i])})
        return list(best.values())

    def recognise_photos(self, conn: psycopg.Connection, image_ids: Iterable[int]) -> int:
        """Write predictions (and embeddings) for photos that have none under this bundle."""
        ids = sorted(set(int(i) for i in image_ids))
        if not ids:
            return 0
        rows = conn.execute(
            """
            SELECT i.id, i.sha256, i.phash FROM images i
             WHERE i.id = ANY(%s) AND NOT EXISTS (
                   SELECT 1 FROM predictions p WHERE p.image_id = i.id AND p.bundle_id = %s)
             ORDER BY i.id
            """,
            (ids, self.bundle_id),
        ).fetchall()
        # Decoded in a thread pool at about the model's resolution, overlapped with the model
        # (matcher.inference); a photo that can never be decoded is recorded failed once.
        batch = self.predictor.predict(photos_of(rows))
        mark_unreadable(conn, batch.unreadable)
        if batch.retry:
            log.warning("images %s could not be read now; the sweeper retries them", batch.retry)
        by_id = {int(row["id"]): row for row in rows}
        kept = [by_id[i] for i in batch.ids]
        if not kept:
            return 0
        k = self.policy.top_k
        preds = Predictions(self.bundle.calibrated(batch.logits), [], batch.embeddings)
        assert preds.embeddings is not None
        # search + per_object from one chunked pass over the catalogue matrix
        hits, retrieval = self.index.query(preds.embeddings, k=max(k, 10),
                                           objects=self.class_object_ids)
        scores = self.bundle.alert_scores(preds.probs, retrieval)
        params = []
        for row, probs, sims, alert, emb, photo_hits in zip(
                kept, preds.probs, retrieval, scores, preds.embeddings, hits, strict=True):
            best_photo = {h.object_id: h.image_id for h in photo_hits}
            order = np.argsort(-alert, kind="stable")
            topk = []
            for cls_idx in order:
                obj = self.class_object_ids[cls_idx]
                if obj is None:
                    continue
                image = best_photo.get(obj)
                if image is None:
                    image = self.index.best_photo(emb, obj)
                topk.append({
                    "object_id": obj,
                    "accession": self.bundle.objects[cls_idx],
                    "score": float(alert[cls_idx]),
                    "classifier": float(probs[cls_idx]),
                    "retrieval": float(sims[cls_idx]) if image is not None else None,
                    "object_image_id": image,
                })
                if len(topk) == k:
                    break
            unknown = [
                {"object_id": h.object_id, "retrieval": h.similarity,
                 "object_image_id": h.image_id}
                for h in photo_hits if h.object_id not in self.known_objects
            ]
            payload = {"classifier": topk, "retrieval_only": unknown}
            params.append((row["id"], self.bundle_id, Jsonb(payload),
                           topk[0]["score"] if topk else 0.0,
                           Jsonb(self._phash_hits(int(row["phash"])))))
        with conn.transaction():
            conn.cursor().executemany(
                """
                INSERT INTO predictions (image_id, bundle_id, topk, best_score, phash_hits)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (image_id, bundle_id) DO NOTHING
                """,
                params,
            )
            store_embeddings(conn, self.bundle_id, [r["id"] for r in kept], preds.embeddings)
        return len(kept)

    # --- listings -----------------------------------------------------------------------

    def score_listing(self, conn: psycopg.Connection, listing_id: int) -> list[dict[str, Any]]:
        """Turn a listing's photo predictions into candidate matches; return new or changed."""
        preds = conn.execute(
            """
            SELECT li.image_id, p.topk, p.phash_hits
              FROM listing_images li
              JOIN predictions p ON p.image_id = li.image_id AND p.bundle_id = %s
             WHERE li.listing_id = %s AND li.status = 'stored'
            """,
            (self.bundle_id, listing_id),
        ).fetchall()
        candidates: dict[tuple[int, bool], dict[str, Any]] = {}

        def offer(obj: int, model_based: bool, score: float, evidence: dict[str, Any]) -> None:
            key = (obj, model_based)
            if key not in candidates or score > candidates[key]["score"]:
                candidates[key] = {"object_id": obj, "score": score, "evidence": evidence,
                                   "bundle_id": self.bundle_id if model_based else None}

        for p in preds:
            for c in p["topk"].get("classifier", []):
                offer(c["object_id"], True, c["score"], {
                    "image_id": p["image_id"], "method": "classifier",
                    "object_image_id": c["object_image_id"],
                    "scores": {"classifier": c.get("classifier", c["score"]),
                               "retrieval": c["retrieval"], "alert": c["score"]},
                })
            for c in p["topk"].get("retrieval_only", []):
                if c["retrieval"] >= self.policy.retrieval_threshold:
                    offer(c["object_id"], True, c["retrieval"], {
                        "image_id": p["image_id"], "method": "retrieval",
                        "object_image_id": c["object_image_id"],
                        "scores": {"retrieval": c["retrieval"]},
                    })
            for h in p["phash_hits"]:
                offer(h["object_id"], False, 1.0, {
                    "image_id": p["image_id"], "method": "phash",
                    "object_image_id": h["object_image_id"],
                    "scores": {"phash_distance": h["distance"]},
                })
        model_based = sorted((c for (_, m), c in candidates.items() if m),
                             key=lambda c: -c["score"])
        chosen = [c for (_, m), c in candidates.items() if not m]  # phash hits always alert
        suspicious = any(
            c["evidence"]["method"] == "retrieval" or c["score"] >= self.threshold
            for c in model_based
        )
        if suspicious or chosen:  # a reused museum photo also shows the model's candidates
            chosen += model_based[: self.policy.top_k]
        written = []
        for rank, cand in enumerate(sorted(chosen, key=lambda c: -c["score"]), start=1):
            row = conn.execute(
                """
                INSERT INTO matches (listing_id, object_id, bundle_id, score, rank, evidence)
                VALUES (%s, %s, %s, %s, %s, %s)
                ON CONFLICT (listing_id, object_id, coalesce(bundle_id, 0)) DO UPDATE
                   SET score = EXCLUDED.score, rank = EXCLUDED.rank,
                       evidence = EXCLUDED.evidence, updated_at = now()
                 WHERE (matches.score, matches.rank) IS DISTINCT FROM
                       (EXCLUDED.score, EXCLUDED.rank)
                RETURNING id
                """,
                (listing_id, cand["object_id"], cand["bundle_id"], cand["score"], rank,
                 Jsonb(cand["evidence"])),
            ).fetchone()
            if row is not None:  # new or changed; an unchanged match is not news
                written.append({**cand, "rank": rank, "match_id": int(row["id"])})
        return written

    def handle(self, conn: psycopg.Connection,
               requests: Sequence[tuple[Sequence[int], int | None]]) -> dict[str, Any]:
        """One batch of task requests: recognise all photos at once, then score listings."""
        image_ids = {int(i) for ids, _ in requests for i in ids}
        recognised = self.recognise_photos(conn, image_ids)
        listings = {lid for _, lid in requests if lid is not None}
        orphans = [i for ids, lid in requests if lid is None for i in ids]
        if orphans:  # a photo enqueued without its listing: score every listing showing it
            listings |= {
                int(r["listing_id"]) for r in conn.execute(
                    "SELECT DISTINCT listing_id FROM listing_images WHERE image_id = ANY(%s)",
                    (orphans,),
                ).fetchall()
            }
        match_ids: list[int] = []
        scored, failed = [], {}
        for lid in sorted(listings):
            try:
                match_ids += [m["match_id"] for m in self.score_listing(conn, lid)]
                scored.append(lid)
            except DB_UNAVAILABLE:
                raise  # the whole batch waits for the database and is retried
            except Exception as exc:  # one listing's bug does not cost the others their scores
                log.exception("listing %s could not be scored", lid)
                failed[lid] = f"{type(exc).__name__}: {exc}"[:500]
        record_scored(conn, self.bundle_id, scored, failed)
        return {"photos": recognised, "listings": len(listings), "match_ids": match_ids,
                "listing_ids": sorted(listings)}
