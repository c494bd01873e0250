"""The backbone's inference number format: bfloat16 only where the hardware has it, float32 after
the backbone, and a bundle that says which format it was calibrated in."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from artwatch.settings import SettingsError, get_settings, load_settings
from matcher.bundle import BUNDLE_JSON, Bundle
from matcher.precision import (
    BFLOAT16,
    FLOAT32,
    inference_precision,
    native_bfloat16_cpu,
    served_forward,
)
from matcher.sample import write_untrained_bundle

CPU = torch.device("cpu")


def test_the_format_follows_the_hardware() -> None:
    assert inference_precision(torch.device("cuda")) == BFLOAT16
    assert inference_precision(CPU) == (BFLOAT16 if native_bfloat16_cpu() else FLOAT32)


def test_served_embeddings_stay_close_to_float32_and_are_float32(tmp_path: Path) -> None:
    bundle = Bundle.load(write_untrained_bundle(tmp_path / "b", name="b", objects=["A", "B"]))
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8))
    _, served = bundle.forward_pixels(pixels)
    x = bundle.preprocess.normalise(pixels).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        _, exact = bundle.model.forward_both(x)  # float32 throughout
    assert served.dtype == torch.float32
    assert np.allclose(np.linalg.norm(served.numpy(), axis=1), 1.0, atol=1e-5)
    if inference_precision(CPU) == FLOAT32:
        assert torch.equal(served, exact)
    else:  # bfloat16 backbone: the features move a little, never the embedding's scale
        assert float((served * exact).sum(1).min()) > 0.99
        assert not torch.equal(served, exact)
    with torch.inference_mode():
        again = served_forward(bundle.model, x, CPU)[1]
    assert torch.equal(again, served)  # one rule: the paper recipe's evaluation serves this


def test_a_bundle_calibrated_in_another_format_is_logged(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    path = write_untrained_bundle(tmp_path / "b", name="b", objects=["A", "B"])
    info = json.loads((path / BUNDLE_JSON).read_text())
    other = FLOAT32 if inference_precision(CPU) == BFLOAT16 else BFLOAT16
    (path / BUNDLE_JSON).write_text(json.dumps({**info, "inference_precision": other}))
    with caplog.at_level(logging.WARNING, logger="matcher.bundle"):
        Bundle.load(path)
    assert f"calibrated on {other} features" in caplog.text
    caplog.clear()
    (path / BUNDLE_JSON).write_text(json.dumps(
        {**info, "inference_precision": inference_precision(CPU)}))
    with caplog.at_level(logging.WARNING, logger="matcher.bundle"):
        Bundle.load(path)
    assert "calibrated on" not in caplog.text


def test_the_format_can_be_set_for_a_deployment(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """backbone_precision=float32: exactly float32's features even on bfloat16 hardware (a
    deployment whose matchers lack it calibrates in their format); a typo is an error."""
    assert inference_precision(torch.device("cuda"), FLOAT32) == FLOAT32
    assert inference_precision(CPU, BFLOAT16) == BFLOAT16
    with pytest.raises(ValueError, match="fp8"):
        inference_precision(CPU, "fp8")
    monkeypatch.setenv("ARTWATCH_BACKBONE_PRECISION", "fp8")
    with pytest.raises(SettingsError, match="ARTWATCH_BACKBONE_PRECISION"):
        load_settings()
    monkeypatch.setenv("ARTWATCH_BACKBONE_PRECISION", FLOAT32)
    get_settings.cache_clear()
    try:
        assert inference_precision(CPU) == FLOAT32
        bundle = Bundle.load(write_untrained_bundle(tmp_path / "b", name="b",
                                                    objects=["A", "B"]))
        pixels = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3),
                                                                     dtype=np.uint8))
        _, served = bundle.forward_pixels(pixels)
    finally:
        monkeypatch.delenv("ARTWATCH_BACKBONE_PRECISION")
        get_settings.cache_clear()
    x = bundle.preprocess.normalise(pixels).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        _, exact = bundle.model.forward_both(x)
    assert torch.equal(served, exact)
