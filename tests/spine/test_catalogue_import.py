"""Catalogue import on a small generated catalogue, and on COIL-100 when it is there."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image

from artwatch.catalogue import ManifestError, catalogue_stats, import_catalogue
from artwatch.images import ImageStore

COIL100 = Path(__file__).resolve().parents[3] / "shared" / "data" / "coil100"


def _write_catalogue(root: Path, objects: int = 4, photos: int = 3) -> list[dict[str, str]]:
    """A few objects with a few distinct photos each, as a registrar's export would be."""
    (root / "photos").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(7)
    for o in range(objects):
        for p in range(photos):
            pixels = rng.integers(0, 255, size=(12, 16, 3), dtype=np.uint8)
            name = f"photos/obj{o}_{p}.jpg"
            Image.fromarray(pixels).resize((160, 120)).save(root / name, quality=90)
            rows.append({
                "object_id": f"TEST.{o:03d}", "image": name,
                "collection": "ceramics" if o % 2 else "bronzes",
                "title": f"Object {o}", "url": f"https://museum.invalid/{o}",
                "view": str(p * 30), "department": "Oriental",
            })
    _write_manifest(root, rows)
    return rows


def _write_manifest(root: Path, rows: list[dict[str, str]]) -> None:
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def test_import_then_reimport_adds_nothing(conn: psycopg.Connection, tmp_path: Path,
                                           image_store: ImageStore) -> None:
    _write_catalogue(tmp_path / "cat")
    report = import_catalogue(conn, tmp_path / "cat", image_store, workers=1)
    assert (report.objects_added, report.photos_added, report.errors) == (4, 12, [])
    assert (_count(conn, "objects"), _count(conn, "images"), _count(conn, "object_images")) == (
        4, 12, 12)
    obj = conn.execute("SELECT * FROM objects WHERE accession = 'TEST.001'").fetchone()
    assert obj["collection"] == "ceramics" and obj["title"] == "Object 1"
    assert obj["metadata"] == {"department": "Oriental"}  # constant extra column
    views = conn.execute(
        "SELECT metadata->>'view' AS v FROM object_images ORDER BY id LIMIT 3").fetchall()
    assert [v["v"] for v in views] == ["0", "30", "60"]  # per-photo extra column

    again = import_catalogue(conn, tmp_path / "cat", image_store, workers=1)
    assert (again.objects_added, again.objects_updated, again.photos_added) == (0, 0, 0)
    assert again.photos_already_present == 12
    assert _count(conn, "object_images") == 12


def test_duplicate_photo_under_two_objects_reported(conn: psycopg.Connection, tmp_path: Path,
                                                    image_store: ImageStore) -> None:
    rows = _write_catalogue(tmp_path / "cat", objects=2, photos=2)
    shutil.copy(tmp_path / "cat" / rows[0]["image"], tmp_path / "cat" / "photos/copy.jpg")
    rows.append({**rows[2], "image": "photos/copy.jpg"})  # object 1 reuses object 0's photo
    _write_manifest(tmp_path / "cat", rows)
    report = import_catalogue(conn, tmp_path / "cat", image_store, workers=1)
    assert len(report.duplicates) == 1
    message = report.duplicates[0]
    assert "TEST.000" in message and "TEST.001" in message and "photos/copy.jpg" in message
    assert report.photos_added == 4
    # Importing again, the database remembers who owns the photo.
    again = import_catalogue(conn, tmp_path / "cat", image_store, workers=1)
    assert len(again.duplicates) == 1 and again.photos_added == 0


def test_broken_photos_skipped_and_counted(conn: psycopg.Connection, tmp_path: Path,
                                           image_store: ImageStore) -> None:
    rows = _write_catalogue(tmp_path / "cat", objects=2, photos=3)
    root = tmp_path / "cat"
    (root / rows[0]["image"]).write_bytes(b"not really a jpeg")
    data = (root / rows[1]["image"]).read_bytes()
    (root / rows[1]["image"]).write_bytes(data[: len(data) // 3])
    rows.append({**rows[2], "image": "photos/missing.jpg"})
    rows.append({**rows[2], "image": "../../etc/passwd"})
    _write_manifest(root, rows)
    report = import_catalogue(conn, root, image_store, workers=1)
    assert report.photos_added == 4
    assert len(report.skipped) == 4
    joined = "\n".join(report.skipped)
    assert "not_an_image" in joined and "corrupt" in joined
    assert "missing.jpg: unreadable" in joined and "outside the catalogue directory" in joined
    assert _count(conn, "images") == 4


def test_manifest_without_required_column_is_refused(conn: psycopg.Connection,
                                                     tmp_path: Path,
                                                     image_store: ImageStore) -> None:
    (tmp_path / "manifest.csv").write_text("object_id,image\nA,a.jpg\n")
    with pytest.raises(ManifestError, match="collection"):
        import_catalogue(conn, tmp_path, image_store)
    with pytest.raises(ManifestError, match="no manifest.csv"):
        import_catalogue(conn, tmp_path / "nowhere", image_store)


def test_stats_histogram_and_collections(conn: psycopg.Connection, tmp_path: Path,
                                         image_store: ImageStore) -> None:
    _write_catalogue(tmp_path / "cat", objects=4, photos=3)
    import_catalogue(conn, tmp_path / "cat", image_store, workers=1)
    stats = catalogue_stats(conn)
    assert (stats.objects, stats.photos) == (4, 12)
    assert stats.per_object["3"] == 4 and stats.per_object["10+"] == 0
    assert stats.collections == {"bronzes": (2, 6), "ceramics": (2, 6)}


def test_cli_import_and_stats(clean_db: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from artwatch.cli import app

    _write_catalogue(tmp_path / "cat", objects=3, photos=4)
    runner = CliRunner()
    result = runner.invoke(app, ["catalogue", "import", str(tmp_path / "cat")])
    assert result.exit_code == 0, result.output
    assert "12 photos added" in result.output
    result = runner.invoke(app, ["catalogue", "stats"])
    assert result.exit_code == 0, result.output
    assert "objects: 3" in result.output and "photos: 12" in result.output


def test_only_http_object_urls_are_stored_others_reported(clean_db: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from artwatch.cli import app
    from artwatch.db import connect

    rows = _write_catalogue(tmp_path / "cat", objects=4, photos=1)
    hostile = ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
               "/objects/2"]
    for row, url in zip(rows, hostile, strict=False):
        row["url"] = url
    _write_manifest(tmp_path / "cat", rows)
    result = CliRunner().invoke(app, ["catalogue", "import", str(tmp_path / "cat")])
    assert result.exit_code == 0, result.output
    refused = [line for line in result.output.splitlines() if line.startswith("url refused")]
    assert len(refused) == 3 and "3 URLs refused" in result.output
    assert "line 2: object TEST.000: url 'javascript:alert(1)' is not an http(s) URL" in (
        refused[0])
    with connect(clean_db) as conn:
        urls = {r["accession"]: r["url"]
                for r in conn.execute("SELECT accession, url FROM objects")}
    assert urls == {"TEST.000": None, "TEST.001": None, "TEST.002": None,
                    "TEST.003": "https://museum.invalid/3"}


@pytest.mark.coil100
@pytest.mark.skipif(not (COIL100 / "manifest.csv").is_file(), reason="COIL-100 not present")
def test_coil100_import_rate(conn: psycopg.Connection, tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images", max_bytes=1 << 24, max_pixels=1 << 26)
    started = time.perf_counter()
    report = import_catalogue(conn, COIL100, store, workers=2)
    first = time.perf_counter() - started
    started = time.perf_counter()
    again = import_catalogue(conn, COIL100, store, workers=2)
    second = time.perf_counter() - started
    print(f"\nCOIL-100 import: {report.rows} photos in {first:.1f}s "
          f"({report.rows / first:.0f} photos/s); re-import {second:.2f}s "
          f"({first / second:.0f}x faster)")
    stats = catalogue_stats(conn)
    assert (stats.objects, stats.photos) == (100, 7168)
    assert stats.per_object["10+"] == 100
    assert report.errors == [] and again.photos_added == 0
    assert second < first  # the re-import decodes nothing
    assert sum(p for _, p in stats.collections.values()) == 7168
