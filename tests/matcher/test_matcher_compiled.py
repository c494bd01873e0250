"""The compiled backbone forward (`matcher.compiled`): the eager forward's features to the
fused kernels' rounding, every batch size through one graph, and eager again when compiling
is impossible."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from artwatch.settings import SettingsError, get_settings, load_settings
from matcher.bundle import Bundle
from matcher.compiled import CHUNK, MIN_IMAGES, compile_wanted
from matcher.precision import served_forward, served_maps
from matcher.sample import write_untrained_bundle

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[2]


def _backbone() -> torch.nn.Module:
    """A random Lite0 (no weights file needed: compiling does not care)."""
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    return model.eval().to(memory_format=torch.channels_last)


def test_auto_compiles_only_large_workloads_and_the_setting_is_checked(monkeypatch) -> None:  # noqa: ANN001
    assert not compile_wanted(MIN_IMAGES - 1, "auto")
    assert compile_wanted(MIN_IMAGES, "auto")
    assert not compile_wanted(None, "auto")  # a stream of unknown length: eager unless asked
    assert not compile_wanted(10 * MIN_IMAGES, "off")
    assert compile_wanted(1, "on") and compile_wanted(None, "on")
    with pytest.raises(ValueError, match="sometimes"):
        compile_wanted(1, "sometimes")
    monkeypatch.setenv("ARTWATCH_BACKBONE_COMPILE", "sometimes")
    with pytest.raises(SettingsError, match="ARTWATCH_BACKBONE_COMPILE"):
        load_settings()
    monkeypatch.setenv("ARTWATCH_BACKBONE_COMPILE", "off")
    assert load_settings().backbone_compile == "off"


def test_a_compiled_bundle_serves_the_eager_features_for_any_batch_size(
        tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """ARTWATCH_BACKBONE_COMPILE=on: the bundle compiles when it loads (a matcher's first
    listings do not wait), and every batch size, through one padded graph, gets the eager
    forward's features to the fused kernels' rounding."""
    path = write_untrained_bundle(tmp_path / "b", name="b", objects=["A", "B"])
    monkeypatch.setenv("ARTWATCH_BACKBONE_COMPILE", "on")
    get_settings.cache_clear()
    try:
        bundle = Bundle.load(path)
    finally:
        monkeypatch.delenv("ARTWATCH_BACKBONE_COMPILE")
        get_settings.cache_clear()
    forward = bundle.backbone_forward
    assert forward.compiled  # this machine has a C++ compiler: it really compiled
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.integers(0, 256, (CHUNK + 3, 64, 64, 3), dtype=np.uint8))
    _, served = bundle.forward_pixels(pixels)
    _, alone = bundle.forward_pixels(pixels[:5])  # smaller than a chunk: padded, trimmed
    maps, pooled = bundle.forward_maps(pixels)
    x = bundle.preprocess.normalise(pixels).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        _, eager = served_forward(bundle.model, x, CPU)
        eager_maps, eager_pooled = served_maps(bundle.model.backbone, x, CPU)
    assert forward.compiled  # still: no call fell back to eager
    assert served.shape == eager.shape and alone.shape == (5, eager.shape[1])
    assert maps.shape == tuple(eager_maps.shape) and pooled.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity
    assert float(cos(served, eager).min()) > 0.999
    assert float(cos(alone, eager[:5]).min()) > 0.999
    assert float(cos(pooled, eager_pooled).min()) > 0.999
    assert float(cos(torch.from_numpy(maps).flatten(1), eager_maps.flatten(1)).min()) > 0.999
    # each photo keeps its own features (no row of the padding or of another photo)
    assert float(cos(served[:1], served[1:]).max()) < 0.9999


def test_without_a_cxx_compiler_the_forward_stays_eager_and_says_so(tmp_path) -> None:  # noqa: ANN001
    """A machine with no C++ compiler: Inductor fails, the forward logs it and runs eager."""
    script = textwrap.dedent("""
        import logging, torch
        from tests.matcher.test_matcher_compiled import _backbone
        from matcher.compiled import BackboneForward
        from matcher.precision import served_pooled
        logging.basicConfig(level=logging.WARNING)
        backbone = _backbone()
        forward = BackboneForward(backbone, torch.device("cpu"), compiled=True)
        with torch.inference_mode():
            x = torch.randn(3, 3, 64, 64).contiguous(memory_format=torch.channels_last)
            out = forward.pooled(x)
            assert torch.equal(out, served_pooled(backbone, x, torch.device("cpu")))
        assert not forward.compiled
        print("EAGER", tuple(out.shape))
    """)
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"),
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "EAGER (3, 1280)" in done.stdout
    assert "compiling the backbone failed, it runs eager" in done.stderr
