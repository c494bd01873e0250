"""Suspected matches written straight into the schema, for tests, the benchmark and demos.

It writes what the crawler and the matcher would (sources, listings, listing photos,
catalogue objects with photos, a bundle, matches with the evidence contract of
alerts/README.md), so the alerting stage can be exercised before those stages run.
Photos are small procedural JPEGs put through the real ImageStore.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field

import psycopg
from PIL import Image, ImageDraw
from psycopg.types.json import Jsonb

from artwatch.images import ImageStore
from artwatch.images.records import record_image

METHODS = ("classifier", "retrieval", "phash")


def make_photo(rng: random.Random, label: str, size: tuple[int, int] = (240, 180)) -> bytes:
    """A distinct JPEG: a coloured 'object' on a plain ground, with a label."""
    ground = tuple(rng.randint(170, 245) for _ in range(3))
    image = Image.new("RGB", size, ground)
    draw = ImageDraw.Draw(image)
    w, h = size
    for _ in range(rng.randint(2, 4)):
        x0, y0 = rng.randint(0, w // 2), rng.randint(0, h // 2)
        x1, y1 = x0 + rng.randint(w // 5, w // 2), y0 + rng.randint(h // 5, h // 2)
        colour = tuple(rng.randint(20, 160) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    draw.text((6, h - 16), label[:30], fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


class ArtefactPhotos:
    """Photos of the demo generator's museum objects (artwatch.demo): catalogue views, and
    another view of the same object as the listing photo, as a looted piece would appear."""

    def __init__(self, seed: int, size: int = 256) -> None:
        self.seed, self.size = seed, size
        self._art: dict[int, tuple] = {}

    def _object(self, index: int) -> tuple:
        if index not in self._art:
            from artwatch.demo.artefacts import build_artefact, object_spec, plan_views

            spec = object_spec(self.seed, index)
            self._art[index] = (spec, build_artefact(spec), plan_views(spec, count=2))
        return self._art[index]

    def metadata(self, index: int) -> tuple[str, str, str]:
        spec = self._object(index)[0]
        return spec.object_id, spec.collection, spec.title

    def photo(self, index: int, view: int) -> bytes:
        from artwatch.demo.render import render

        _, art, views = self._object(index)
        return _jpeg(render(art, views[view % len(views)], self.size, 1))


@dataclass
class Seeded:
    source_id: int
    bundle_id: int
    object_ids: list[int] = field(default_factory=list)
    listing_ids: list[int] = field(default_factory=list)
    match_ids: list[int] = field(default_factory=list)


def _put(conn: psycopg.Connection, store: ImageStore, data: bytes) -> int:
    return record_image(conn, store.put(data))


def seed_matches(
    conn: psycopg.Connection,
    store: ImageStore,
    *,
    listings: int = 3,
    candidates: int = 5,
    photos_per_listing: int = 2,
    objects: int | None = None,
    seed: int = 0,
    title: str = "Lot {n}: bronze figure, provenance private collection",
    source_name: str = "Demo Auctions",
    score_range: tuple[float, float] = (0.5, 0.94),
    artefacts: bool = False,
) -> Seeded:
    """Insert `listings` listings, each with `candidates` open matches (idempotent per seed).

    With `artefacts`, photos are the demo generator's rendered museum objects (slower,
    ~0.25 s a photo; for screenshots and demos); otherwise quick procedural pictures.
    """
    rng = random.Random(seed)
    art = ArtefactPhotos(seed) if artefacts else None
    src = conn.execute(
        "INSERT INTO sources (name, spider, start_urls, allow_private) "
        "VALUES (%s, 'generic', ARRAY['http://127.0.0.1:9/'], true) "
        "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (source_name,),
    ).fetchone()["id"]
    bundle = conn.execute(
        "INSERT INTO bundles (name, path, architecture, info) "
        "VALUES ('demo-b0-v1', '/nonexistent', 'tf_efficientnet_lite0', "
        "'{\"created_at\": \"2026-11-01\", \"thresholds\": {\"precision_0.90\": 0.45, "
        "\"precision_0.95\": 0.5, \"precision_0.99\": 0.6}}') "
        "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id"
    ).fetchone()["id"]
    out = Seeded(source_id=src, bundle_id=bundle)
    n_objects = objects or max(candidates, listings * candidates)
    object_photo: dict[int, int] = {}
    object_index: dict[int, int] = {}
    for i in range(n_objects):
        accession = f"DEMO.{seed}.{i:05d}"
        collection = rng.choice(["Oriental Museum", "Egyptology", "Chinese ceramics"])
        obj_title = f"Object {i}: {rng.choice(['jade cup', 'bronze mirror', 'stele', 'amulet'])}"
        if art is not None:
            accession, collection, obj_title = art.metadata(i)
        oid = conn.execute(
            "INSERT INTO objects (accession, collection, title, url) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (accession) DO UPDATE SET title = EXCLUDED.title RETURNING id",
            (accession, collection, obj_title, f"https://museum.invalid/objects/{accession}"),
        ).fetchone()["id"]
        object_index[oid] = i
        photo = art.photo(i, 0) if art is not None else make_photo(rng, accession)
        image_id = _put(conn, store, photo)
        conn.execute(
            "INSERT INTO object_images (object_id, image_id, source_name) VALUES (%s, %s, %s) "
            "ON CONFLICT (image_id) DO NOTHING",
            (oid, image_id, f"{accession}.jpg"),
        )
        out.object_ids.append(oid)
        object_photo[oid] = image_id
    for n in range(listings):
        listing = conn.execute(
            "INSERT INTO listings (source_id, external_id, url, title, price, currency) "
            "VALUES (%s, %s, %s, %s, %s, 'GBP') ON CONFLICT (source_id, external_id) "
            "DO UPDATE SET title = EXCLUDED.title RETURNING id",
            (src, f"{seed}-{n}", f"http://127.0.0.1:9/lots/{seed}-{n}",
             title.format(n=n), rng.randint(2, 400) * 50),
        ).fetchone()["id"]
        out.listing_ids.append(listing)
        chosen = rng.sample(out.object_ids, min(candidates, len(out.object_ids)))
        photo_ids = []
        for p in range(photos_per_listing):
            if art is not None:  # the listed piece is the top candidate, seen from elsewhere
                photo = art.photo(object_index[chosen[0]], 1 + p)
            else:
                photo = make_photo(rng, f"lot {n} photo {p}")
            image_id = _put(conn, store, photo)
            photo_ids.append(image_id)
            conn.execute(
                "INSERT INTO listing_images (listing_id, url, position, image_id, status) "
                "VALUES (%s, %s, %s, %s, 'stored') ON CONFLICT (listing_id, url) DO NOTHING",
                (listing, f"http://127.0.0.1:9/img/{seed}-{n}-{p}.jpg", p, image_id),
            )
        scores = sorted((rng.uniform(*score_range) for _ in chosen), reverse=True)
        for rank, (oid, score) in enumerate(zip(chosen, scores, strict=True), start=1):
            method = METHODS[rank % len(METHODS)] if rank > 1 else "classifier"
            evidence = {
                "image_id": rng.choice(photo_ids),
                "method": method,
                "object_image_id": object_photo[oid],
                "scores": {"classifier": round(score, 4), "retrieval": round(score - 0.05, 4)}
                | ({"phash_distance": rng.randint(0, 6)} if method == "phash" else {}),
            }
            match = conn.execute(
                "INSERT INTO matches (listing_id, object_id, bundle_id, score, rank, evidence) "
                "VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (listing_id, object_id, coalesce(bundle_id, 0)) "
                "DO UPDATE SET score = EXCLUDED.score RETURNING id",
                (listing, oid, None if method == "phash" else bundle, score, rank,
                 Jsonb(evidence)),
            ).fetchone()["id"]
            out.match_ids.append(match)
    return out
