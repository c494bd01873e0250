"""`artwatch demo ...` commands (the typer sub-app, invoked directly)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from artwatch.demo.cli import app

runner = CliRunner()


def test_catalogue_and_listings_commands(tmp_path: Path) -> None:
    cat = tmp_path / "cat"
    result = runner.invoke(
        app,
        ["catalogue", str(cat), "--objects", "2", "--seed", "4", "--size", "64", "--workers", "1"],
    )
    assert result.exit_code == 0, result.output
    with open(cat / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len({r["object_id"] for r in rows}) == 2 and f"{len(rows)} photos" in result.output
    out = tmp_path / "listings"
    result = runner.invoke(
        app,
        [
            "listings",
            str(out),
            "--catalogue",
            str(cat),
            "--count",
            "3",
            "--seed",
            "1",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    with open(out / "listings.csv", newline="") as fh:
        listed = list(csv.DictReader(fh))
    assert len(listed) == 3 and all((out / r["image"]).exists() for r in listed)


def test_contact_sheet_command(tmp_path: Path) -> None:
    png = tmp_path / "sheet.png"
    result = runner.invoke(
        app, ["contact-sheet", str(png), "--seed", "1", "--objects", "2", "--listings", "2"]
    )
    assert result.exit_code == 0, result.output
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 600 and im.height > 400
        assert np.asarray(im.convert("L")).std() > 20  # pictures, not a blank page


def test_catalogue_command_rejects_bad_options(tmp_path: Path) -> None:
    result = runner.invoke(app, ["catalogue", str(tmp_path / "x"), "--objects", "0"])
    assert result.exit_code != 0
    assert not (tmp_path / "x" / "manifest.csv").exists()
