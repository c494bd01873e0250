"""A generated catalogue imports cleanly with the real importer and `artwatch catalogue import`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import psycopg
from typer.testing import CliRunner

from artwatch.catalogue import import_catalogue
from artwatch.demo.catalogue import generate_catalogue
from artwatch.images import ImageStore


def _count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def test_generated_catalogue_imports_cleanly(
    conn: psycopg.Connection, tmp_path: Path, image_store: ImageStore
) -> None:
    rows = generate_catalogue(tmp_path / "cat", 4, seed=8, size=96, workers=1)
    report = import_catalogue(conn, tmp_path / "cat", image_store, workers=1)
    assert report.errors == []
    assert (report.objects_added, report.photos_added) == (4, len(rows))
    assert (_count(conn, "objects"), _count(conn, "object_images")) == (4, len(rows))
    first = rows[0]
    obj = conn.execute("SELECT * FROM objects WHERE accession = %s", (first.object_id,)).fetchone()
    assert obj["collection"] == first.collection and obj["title"] == first.title
    assert obj["url"] == first.url
    assert obj["metadata"]["family"] == first.family  # generator columns kept as metadata
    per_object = Counter(r.object_id for r in rows)
    linked = conn.execute(
        "SELECT o.accession, count(*) AS n FROM object_images oi "
        "JOIN objects o ON o.id = oi.object_id "
        "GROUP BY o.accession"
    ).fetchall()
    assert {r["accession"]: r["n"] for r in linked} == dict(per_object)
    again = import_catalogue(conn, tmp_path / "cat", image_store, workers=1)
    assert (again.objects_added, again.photos_added, again.errors) == (0, 0, [])


def test_generated_catalogue_imports_with_the_cli(conn: psycopg.Connection, tmp_path: Path) -> None:
    from artwatch.cli import app

    rows = generate_catalogue(tmp_path / "cat", 3, seed=9, size=64, workers=1)
    result = CliRunner().invoke(
        app, ["catalogue", "import", str(tmp_path / "cat"), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "0 skipped, 0 duplicates" in result.output
    assert (_count(conn, "objects"), _count(conn, "object_images")) == (3, len(rows))
