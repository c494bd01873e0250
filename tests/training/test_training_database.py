"""`artwatch train` reads the catalogue from PostgreSQL + the image store and registers."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from artwatch.catalogue import import_catalogue
from artwatch.images import ImageStore
from training.catalogue import load_database, load_manifest
from training.cli import app


def test_train_from_database(conn, settings, small_catalogue: Path, tmp_path: Path) -> None:
    store = ImageStore.from_settings(settings)
    import_catalogue(conn, small_catalogue, store, workers=1)
    from_db = load_database(conn, store)
    from_dir = load_manifest(small_catalogue)
    assert from_db.manifest_hash() == from_dir.manifest_hash()
    assert {p.image_id for p in from_db.photos} == {
        r["image_id"] for r in conn.execute("SELECT image_id FROM object_images")
    }
    first = from_db.photos[0]
    assert first.load().size == from_dir.by_key()[first.key].load().size

    out = tmp_path / "db-bundle"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--out",
            str(out),
            "--name",
            "db-bundle",
            "--arch",
            "test_efficientnet",
            "--resolution",
            "32",
            "--pretrained",
            "none",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--no-plots",
            "--activate",
        ],
    )
    assert result.exit_code == 0, result.output
    info = json.loads((out / "bundle.json").read_text())
    assert info["catalogue"] == {"kind": "database"}
    assert info["pretrained_source"].startswith("none")
    row = conn.execute(
        "SELECT name, path, architecture, active, manifest_hash FROM bundles"
    ).fetchone()
    assert row == {
        "name": "db-bundle",
        "path": str(out.resolve()),
        "architecture": "test_efficientnet",
        "active": True,
        "manifest_hash": from_db.manifest_hash(),
    }
