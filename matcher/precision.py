"""The number format the backbone runs in at inference: bfloat16 where the hardware has it.

A frozen backbone's forward pass is most of the deployment recipe's training time (the views
step puts every catalogue photo through it five times) and most of a CPU matcher's time per
photo. On CUDA, and on CPUs with native bfloat16 arithmetic (AVX512-BF16 or AMX: oneDNN's
bfloat16 convolutions), `torch.autocast` to bfloat16 runs it about twice as fast; elsewhere
bfloat16 is emulated and slower than float32, so those CPUs stay in float32. Measured on this
project's 2-core machine (AVX512-BF16, no AMX), EfficientNet-Lite0 at 224 px, batch 64, one
thread: 26.8 -> 60.1 images/s, pooled features within cosine 0.9995 of float32's (2026-11-30).

Only the backbone runs in bfloat16: the pooled features are cast back to float32 before the
whitening and the head (`Bundle.forward_pixels`, `training.views`), so the embedding's own
arithmetic keeps float32's precision. Training and the matcher pick the format by the same
rule, so on one machine the calibrated score sees exactly the features it is served; a bundle
records the format it was calibrated with (`inference_precision` in bundle.json) and the
matcher logs when it serves in another (a different machine: the features move by about the
cosine above, far less than a listing photo's own variation). The `backbone_precision` setting
(`ARTWATCH_BACKBONE_PRECISION=float32|bfloat16`) replaces the rule where training and
matchers run on different hardware; `matcher.compiled` compiles the same forward.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from artwatch.settings import get_settings
from matcher.model import ArtefactClassifier

BFLOAT16, FLOAT32 = "bfloat16", "float32"


def native_bfloat16_cpu() -> bool:
    """True when this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX tiles).

    PyTorch exposes the check only under `torch.cpu`'s private names; a build without them
    answers False (float32: always correct, at worst slower)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        check = getattr(torch.cpu, name, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:  # pragma: no cover - a build without cpuinfo
            continue
    return False


def inference_precision(device: torch.device, setting: str | None = None) -> str:
    """`BFLOAT16` on CUDA and on CPUs with native bfloat16, else `FLOAT32`, when `setting`
    (default: the `backbone_precision` setting, `ARTWATCH_BACKBONE_PRECISION`) is `auto`;
    `float32` or `bfloat16` overrides the rule (a deployment whose matchers run on other
    hardware than its training calibrates in the format they serve; a benchmark times a
    float32-only CPU's recipe on this one).

    Raises ValueError for another value."""
    chosen = setting or get_settings().backbone_precision
    if chosen in (FLOAT32, BFLOAT16):
        return chosen
    if chosen != "auto":
        raise ValueError(f"backbone precision {chosen!r}: expected auto, float32 or bfloat16")
    if device.type == "cuda":
        return BFLOAT16
    if device.type == "cpu" and native_bfloat16_cpu():
        return BFLOAT16
    return FLOAT32


def backbone_autocast(device: torch.device,
                      precision: str | None = None) -> AbstractContextManager:
    """The context the backbone's inference forward runs in on `device` (see the module).

    `precision`: the format, when the caller has already decided it (`matcher.compiled`
    passes it so that a compiled graph holds no CPU-feature query)."""
    if (precision or inference_precision(device)) == BFLOAT16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def served_forward(model: ArtefactClassifier, x: torch.Tensor,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, embeddings) as the matcher computes them: the backbone in this device's format
    (`served_pooled`), the whitening and the head in float32. The paper recipe's evaluation
    calls this; `Bundle.forward_pixels` does the same through `matcher.compiled`, which
    compiles `served_pooled` where asked."""
    return model.heads(served_pooled(model.backbone, x, device))


def served_maps(backbone: torch.nn.Module, x: torch.Tensor, device: torch.device,
                precision: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(last feature maps N x C x h x w, pooled features N x C), float32, from a timm backbone
    built with `num_classes=0` (so `forward_head(pre_logits=True)` is its own pooling: the
    pooled features equal `backbone(x)`). The maps say where the object is (`matcher.crop`)."""
    with backbone_autocast(device, precision):
        maps = backbone.forward_features(x)
        pooled = backbone.forward_head(maps, pre_logits=True)
    return maps.float(), pooled.float()


def served_pooled(backbone: torch.nn.Module, x: torch.Tensor, device: torch.device,
                  precision: str | None = None) -> torch.Tensor:
    """Pooled features N x C, float32, of a timm backbone built with `num_classes=0`, in this
    device's format: `served_maps`'s second output without keeping the maps (a crop's pass,
    the distractor bank, the baseline)."""
    with backbone_autocast(device, precision):
        return backbone(x).float()
