"""Generated catalogues for training tests: the demo package's museum-object generator, plus
planted near-duplicate re-saves (a real catalogue's re-scans) for the split tests."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PIL import Image

from artwatch.demo import generate_catalogue


def demo_catalogue(
    out: Path, *, objects: int, seed: int = 0, duplicates: int = 0, size: int = 128
) -> Path:
    """`objects` generated objects (3-10 photos each); the first `duplicates` objects get a
    recompressed copy of their first photo as an extra photo."""
    rows = generate_catalogue(out, objects, seed=seed, size=size, workers=1, supersample=1)
    firsts: dict[str, str] = {}
    for row in rows:
        firsts.setdefault(row.object_id, row.image)
    extra = []
    for object_id, image in list(firsts.items())[:duplicates]:
        buf = io.BytesIO()
        Image.open(out / image).convert("RGB").save(buf, "JPEG", quality=70)
        rel = f"images/{object_id}-resave.jpg"
        (out / rel).write_bytes(buf.getvalue())
        extra.append({"object_id": object_id, "image": rel})
    if extra:
        with (out / "manifest.csv").open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = list(reader.fieldnames or [])
            existing = list(reader)
        by_id = {r["object_id"]: r for r in existing}
        with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(existing)
            for e in extra:
                writer.writerow({**by_id[e["object_id"]], **e})
    return out
