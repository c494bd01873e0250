"""`artwatch catalogue import DIR`: objects and photos into PostgreSQL and the image store.

Idempotent by construction: objects are keyed by accession number, photos by sha256, and
a photo already linked to its object is recognised from its bytes' hash alone, so a second
import reads the files but decodes nothing (that is what makes it fast). Decoding, hashing
and storing new photos runs in a process pool, since it is CPU-bound.

An object's `url` is stored only when it is an http(s) URL (the digest and the review app
link to it); any other (`javascript:`, `data:`, a bare path) is reported in
`ImportReport.refused_urls` and the object is imported without one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from artwatch.catalogue.manifest import ManifestError, ManifestRow, read_manifest
from artwatch.images.decode import ImageRejected
from artwatch.images.records import record_images
from artwatch.images.store import ImageStore, StoredImage
from artwatch.urlsafety import is_web_url

__all__ = ["ImportReport", "ManifestError", "import_catalogue"]

BATCH = 256


@dataclass
class ImportReport:
    """What an import did; errors and skips carry a message a registrar can act on."""

    rows: int = 0
    objects_added: int = 0
    objects_updated: int = 0
    photos_added: int = 0
    photos_already_present: int = 0
    skipped: list[str] = field(default_factory=list)  # unreadable / rejected photos
    duplicates: list[str] = field(default_factory=list)  # one photo under two objects
    refused_urls: list[str] = field(default_factory=list)  # object URLs not http(s): not kept

    @property
    def errors(self) -> list[str]:
        return self.duplicates + self.skipped + self.refused_urls


@dataclass(frozen=True)
class _Candidate:
    row: ManifestRow
    path: Path
    sha256: str


def _store_one(args: tuple[str, str, int, int, int]) -> StoredImage | str:
    """Worker: validate and store one photo; an error message instead of raising."""
    path, location, max_bytes, max_pixels, min_side = args
    store = ImageStore(location, max_bytes=max_bytes, max_pixels=max_pixels, min_side=min_side)
    try:
        return store.put(Path(path).read_bytes())
    except ImageRejected as exc:
        return f"{exc.reason}: {exc.detail}"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"


def _object_metadata(rows: list[ManifestRow]) -> dict[str, str]:
    """Extra columns whose value is the same on every photo of the object."""
    common = dict(rows[0].extra)
    for row in rows[1:]:
        common = {k: v for k, v in common.items() if row.extra.get(k) == v}
    return common


def _upsert_objects(
    conn: psycopg.Connection, rows: list[ManifestRow], report: ImportReport
) -> dict[str, int]:
    by_object: dict[str, list[ManifestRow]] = {}
    for row in rows:
        by_object.setdefault(row.object_id, []).append(row)
    ids: dict[str, int] = {}
    for accession, obj_rows in by_object.items():
        first = obj_rows[0]
        title = next((r.title for r in obj_rows if r.title), None)
        url = None
        for r in obj_rows:
            if r.url and is_web_url(r.url):
                url = url or r.url
            elif r.url:
                report.refused_urls.append(
                    f"line {r.line}: object {accession}: url {r.url[:200]!r} is not an "
                    "http(s) URL; imported without a link"
                )
        meta = Jsonb(_object_metadata(obj_rows))
        row = conn.execute(
            """
            INSERT INTO objects (accession, collection, title, url, metadata)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (accession) DO UPDATE
               SET collection = EXCLUDED.collection, title = EXCLUDED.title,
                   url = EXCLUDED.url, metadata = EXCLUDED.metadata, updated_at = now()
             WHERE (objects.collection, objects.title, objects.url, objects.metadata)
                   IS DISTINCT FROM
                   (EXCLUDED.collection, EXCLUDED.title, EXCLUDED.url, EXCLUDED.metadata)
            RETURNING id, (xmax = 0) AS inserted
            """,
            (accession, first.collection, title, url, meta),
        ).fetchone()
        if row is None:  # unchanged: the conditional update wrote nothing
            row = conn.execute(
                "SELECT id, false AS inserted FROM objects WHERE accession = %s", (accession,)
            ).fetchone()
        elif row["inserted"]:
            report.objects_added += 1
        else:
            report.objects_updated += 1
        assert row is not None
        ids[accession] = int(row["id"])
    return ids


def _existing_links(conn: psycopg.Connection, shas: Iterable[str]) -> dict[str, str]:
    """sha256 -> accession of the object each already-imported photo belongs to."""
    found = conn.execute(
        """
        SELECT i.sha256, o.accession
          FROM images i
          JOIN object_images oi ON oi.image_id = i.id
          JOIN objects o ON o.id = oi.object_id
         WHERE i.sha256 = ANY(%s)
        """,
        (list(shas),),
    ).fetchall()
    return {r["sha256"]: r["accession"] for r in found}


def _read_candidates(
    directory: Path, rows: list[ManifestRow], report: ImportReport
) -> list[_Candidate]:
    root = directory.resolve()
    out = []
    for row in rows:
        path = (directory / row.image).resolve()
        if not path.is_relative_to(root):
            report.skipped.append(f"line {row.line}: {row.image}: outside the catalogue directory")
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            report.skipped.append(f"line {row.line}: {row.image}: unreadable ({exc.strerror})")
            continue
        if not data:
            report.skipped.append(f"line {row.line}: {row.image}: empty: zero-byte file")
            continue
        out.append(_Candidate(row, path, hashlib.sha256(data).hexdigest()))
    return out


def import_catalogue(
    conn: psycopg.Connection,
    directory: Path,
    store: ImageStore,
    *,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import `directory` (manifest.csv + photos); safe to run any number of times."""
    directory = Path(directory)
    rows = read_manifest(directory)
    report = ImportReport(rows=len(rows))
    object_ids = _upsert_objects(conn, rows, report)

    candidates = _read_candidates(directory, rows, report)
    # Who a photo belongs to: its object in the database, else the first manifest row.
    claimed = _existing_links(conn, {c.sha256 for c in candidates})
    seen = set(claimed)  # photos linked already, or queued by an earlier row
    todo: list[_Candidate] = []
    for cand in candidates:
        owner = claimed.setdefault(cand.sha256, cand.row.object_id)
        if owner != cand.row.object_id:
            report.duplicates.append(
                f"line {cand.row.line}: {cand.row.image} (sha256 {cand.sha256[:12]}) is the "
                f"same photo as one of object {owner}; not added to {cand.row.object_id}"
            )
        elif cand.sha256 in seen:
            report.photos_already_present += 1
        else:
            seen.add(cand.sha256)
            todo.append(cand)
    if progress:
        progress(len(candidates) - len(todo))

    jobs = [(str(c.path), store.location, store.max_bytes, store.max_pixels, store.min_side)
            for c in todo]
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 and len(jobs) > 32 else None
    try:
        results = pool.map(_store_one, jobs, chunksize=16) if pool else map(_store_one, jobs)
        batch: list[tuple[_Candidate, StoredImage]] = []
        for cand, result in zip(todo, results, strict=True):
            if isinstance(result, str):
                report.skipped.append(f"line {cand.row.line}: {cand.row.image}: {result}")
            else:
                batch.append((cand, result))
            if len(batch) >= BATCH:
                _insert_photos(conn, batch, object_ids, report)
                batch = []
            if progress:
                progress(1)
        if batch:
            _insert_photos(conn, batch, object_ids, report)
    finally:
        if pool:
            pool.shutdown()
    return report


def _insert_photos(
    conn: psycopg.Connection,
    batch: list[tuple[_Candidate, StoredImage]],
    object_ids: dict[str, int],
    report: ImportReport,
) -> None:
    with conn.transaction():
        record_images(conn, [s for _, s in batch])
        inserted = conn.execute(
            """
            INSERT INTO object_images (object_id, image_id, source_name, metadata)
            SELECT u.object_id, i.id, u.source_name, u.metadata
              FROM unnest(%s::bigint[], %s::char(64)[], %s::text[], %s::jsonb[])
                   AS u(object_id, sha256, source_name, metadata)
              JOIN images i ON i.sha256 = u.sha256
            ON CONFLICT (image_id) DO NOTHING
            RETURNING image_id
            """,
            (
                [object_ids[c.row.object_id] for c, _ in batch],
                [s.sha256 for _, s in batch],
                [c.row.image for c, _ in batch],
                [json.dumps(c.row.extra) for c, _ in batch],
            ),
        ).fetchall()
    report.photos_added += len(inserted)
    report.photos_already_present += len(batch) - len(inserted)
