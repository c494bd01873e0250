"""The catalogue a model is trained on: one `Photo` per catalogued photograph.

Two sources give the same list: PostgreSQL (objects / object_images / images plus the content
store; what `artwatch train` uses) and a catalogue directory with `manifest.csv` (object_id,
image, collection, ...; what benchmarks use without importing anything). A photo is identified
by the sha256 of its bytes, so splits saved in a bundle can be re-found in either source.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from artwatch.images.decode import ImageRejected, decode_image


class CatalogueError(ValueError):
    """The catalogue cannot be read (missing manifest, no photos, wrong columns)."""


@dataclass(frozen=True)
class Photo:
    """One catalogue photo; `load()` gives its original RGB picture."""

    key: str  # sha256 of the file bytes
    object_id: str  # the catalogue's accession / object_id
    collection: str
    phash: int
    source: str  # manifest path or "db:<image id>"
    loader: Callable[[], Image.Image] = field(compare=False, repr=False)
    image_id: int | None = None

    def load(self) -> Image.Image:
        return self.loader()


@dataclass
class Catalogue:
    """Photos plus what was skipped on the way in (never silently)."""

    photos: list[Photo]
    origin: dict[str, str]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def manifest_hash(self) -> str:
        """Hash of (object, photo) pairs: identifies the training data a bundle came from."""
        lines = sorted(f"{p.object_id}\t{p.key}" for p in self.photos)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def by_key(self) -> dict[str, Photo]:
        return {p.key: p for p in self.photos}

    def subset(self, keys: Sequence[str]) -> list[Photo]:
        index = self.by_key()
        return [index[k] for k in keys if k in index]


def _file_loader(path: Path) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        return decode_image(path.read_bytes(), max_bytes=1 << 62, max_pixels=1 << 40).image

    return load


def load_manifest(directory: Path) -> Catalogue:
    """Read `directory/manifest.csv`; unreadable photos are listed in `skipped`."""
    directory = Path(directory)
    manifest = directory / "manifest.csv"
    if not manifest.is_file():
        raise CatalogueError(f"{manifest}: no manifest.csv")
    photos: list[Photo] = []
    skipped: list[dict[str, str]] = []
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"object_id", "image"} - set(reader.fieldnames or [])
        if missing:
            raise CatalogueError(f"{manifest}: missing column(s) {sorted(missing)}")
        for row in reader:
            rel = (row.get("image") or "").strip()
            object_id = (row.get("object_id") or "").strip()
            if not rel or not object_id:
                skipped.append({"source": rel, "reason": "empty object_id or image"})
                continue
            path = (directory / rel).resolve()
            if not path.is_relative_to(directory.resolve()):
                skipped.append({"source": rel, "reason": "path outside the catalogue directory"})
                continue
            try:
                data = path.read_bytes()
                decoded = decode_image(data, max_bytes=1 << 30, max_pixels=1 << 32)
            except OSError as exc:
                skipped.append({"source": rel, "reason": f"unreadable: {exc.strerror or exc}"})
                continue
            except ImageRejected as exc:
                skipped.append({"source": rel, "reason": str(exc)})
                continue
            photos.append(
                Photo(
                    key=hashlib.sha256(data).hexdigest(),
                    object_id=object_id,
                    collection=(row.get("collection") or "").strip() or "unknown",
                    phash=decoded.phash,
                    source=rel,
                    loader=_file_loader(path),
                )
            )
    return _dedupe(photos, skipped, {"kind": "manifest", "path": str(directory.resolve())})


def load_database(conn, store) -> Catalogue:  # noqa: ANN001 - psycopg connection, ImageStore
    """Every catalogued photo in PostgreSQL whose file is in the content store."""
    rows = conn.execute(
        """
        SELECT o.accession, o.collection, i.id AS image_id, i.sha256, i.phash
        FROM object_images oi
        JOIN objects o ON o.id = oi.object_id
        JOIN images i ON i.id = oi.image_id
        ORDER BY o.accession, i.id
        """
    ).fetchall()
    photos: list[Photo] = []
    skipped: list[dict[str, str]] = []
    for row in rows:
        sha = row["sha256"].strip()
        if not store.contains(sha):
            skipped.append({"source": f"db:{row['image_id']}", "reason": "file missing in store"})
            continue
        photos.append(
            Photo(
                key=sha,
                object_id=row["accession"],
                collection=row["collection"] or "unknown",
                phash=int(row["phash"]),
                source=f"db:{row['image_id']}",
                loader=(lambda s=sha: store.open_rgb(s)),
                image_id=int(row["image_id"]),
            )
        )
    return _dedupe(photos, skipped, {"kind": "database"})


def _dedupe(
    photos: list[Photo], skipped: list[dict[str, str]], origin: dict[str, str]
) -> Catalogue:
    """The same bytes under two objects is ambiguous: keep neither, and say so."""
    owners: dict[str, set[str]] = {}
    for photo in photos:
        owners.setdefault(photo.key, set()).add(photo.object_id)
    seen: set[str] = set()
    kept: list[Photo] = []
    for photo in photos:
        if len(owners[photo.key]) > 1:
            skipped.append(
                {
                    "source": photo.source,
                    "reason": "same file catalogued under objects "
                    + json.dumps(sorted(owners[photo.key])),
                }
            )
            continue
        if photo.key in seen:
            skipped.append({"source": photo.source, "reason": "duplicate file"})
            continue
        seen.add(photo.key)
        kept.append(photo)
    if not kept:
        raise CatalogueError("the catalogue has no usable photos")
    return Catalogue(photos=kept, origin=origin, skipped=skipped)


def load_catalogue(source: str | Path | None, conn=None, store=None) -> Catalogue:  # noqa: ANN001
    """A manifest directory when `source` is given, else the database catalogue."""
    if source is not None:
        return load_manifest(Path(source))
    if conn is None or store is None:
        raise CatalogueError("no catalogue directory given and no database connection")
    return load_database(conn, store)
