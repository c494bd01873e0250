"""`--augment marketplace` draws the demo package's marketplace photo simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import get_augment


def test_unknown_augmentation_is_refused() -> None:
    assert get_augment("none") is None
    with pytest.raises(ValueError, match="unknown augmentation"):
        get_augment("sepia")


def test_marketplace_augmentation_changes_the_photo(small_catalogue: Path) -> None:
    try:
        augment = get_augment("marketplace")
    except RuntimeError as exc:
        pytest.skip(str(exc))
    photo = Image.open(next((small_catalogue / "images").iterdir())).convert("RGB")
    out = augment(photo, np.random.default_rng(0))
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert out.size != photo.size or not np.array_equal(np.asarray(out), np.asarray(photo))


def test_training_with_marketplace_augmentation(small_catalogue: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from training.cli import app

    try:
        get_augment("marketplace")
    except RuntimeError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "aug"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--recipe",
            "paper",
            "-c",
            str(small_catalogue),
            "--out",
            str(out),
            "--arch",
            "test_efficientnet",
            "--resolution",
            "32",
            "--pretrained",
            "none",
            "--epochs",
            "1",
            "--augment",
            "marketplace",
            "--no-plots",
            "--no-register",
        ],
    )
    assert result.exit_code == 0, result.output
    import json

    assert json.loads((out / "bundle.json").read_text())["augment"] == "marketplace"
