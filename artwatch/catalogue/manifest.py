"""Reading a catalogue directory's `manifest.csv`.

Required columns: object_id, image, collection. Optional: title, url. Any other column is
kept as per-photo metadata (view angle, photographer, ...), because a registrar's export
always carries more than we know to ask for.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED = ("object_id", "image", "collection")
OPTIONAL = ("title", "url")


class ManifestError(ValueError):
    """The manifest cannot be used at all (missing file or columns)."""


@dataclass(frozen=True)
class ManifestRow:
    line: int
    object_id: str
    image: str
    collection: str
    title: str | None
    url: str | None
    extra: dict[str, str] = field(default_factory=dict)


def read_manifest(directory: Path) -> list[ManifestRow]:
    """All rows of `directory/manifest.csv`, validated for required values."""
    path = Path(directory) / "manifest.csv"
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest.csv in the catalogue directory")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = []
        for line, raw in enumerate(reader, start=2):
            record = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            empty = [c for c in REQUIRED if not record.get(c)]
            if empty:
                raise ManifestError(f"{path}:{line}: empty {', '.join(empty)}")
            extra = {
                k: v for k, v in record.items() if k and k not in REQUIRED + OPTIONAL and v
            }
            rows.append(
                ManifestRow(
                    line=line,
                    object_id=record["object_id"],
                    image=record["image"],
                    collection=record["collection"],
                    title=record.get("title") or None,
                    url=record.get("url") or None,
                    extra=extra,
                )
            )
    return rows
