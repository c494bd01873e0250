"""The frozen backbone's inference forward, compiled to fused kernels where the work pays for it.

Why: `torch.compile` (TorchInductor, with `freezing`: the frozen weights become constants, so
batch norm folds into the convolutions and each depthwise convolution fuses with its
activation) runs EfficientNet-Lite0's forward at 224 px 1.7-2.6x as fast as eager PyTorch on
one CPU core. Measured 2026-11-30 on an Intel Xeon with AMX, one thread, pooled features,
eager / compiled images/s: float32 batch 16 38.8 / 67.4, batch 64 29.0 / 52.6; bfloat16
batch 16 54.1 / 113.8, batch 64 42.8 / 97.0. The backbone is most of the deployment recipe's
training time (`training.views` puts every catalogue photo through it five times and again
for the crops), so this is where a CPU without native bfloat16 gets back under its budget.

The cost: the first call compiles, 10-30 s on 2 cores (Inductor caches the generated code on
disk, so another process on the same machine takes ~7 s). A compiled graph has one batch size;
every batch is cut into `CHUNK` photos and the last one padded, so one graph serves them all
(another size would compile again). Compiling therefore only pays on a large workload:
`compile_wanted` decides (the `backbone_compile` setting, `ARTWATCH_BACKBONE_COMPILE`: `auto`,
the default, compiles from `MIN_IMAGES` images up; `on` always; `off` never).

The outputs are those of `matcher.precision.served_maps` / `served_pooled` in the same number
format, to the fused kernels' rounding: pooled features within cosine 0.9999 of eager's
(bfloat16; float32 1e-5 absolute), far less than the bfloat16/float32 difference
`matcher.precision` already accepts between machines. Without a C++ compiler, or when
Inductor fails for any other reason, the first call logs a WARNING and the forward stays
eager: slower, never wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from artwatch.settings import get_settings
from matcher.precision import inference_precision, served_maps, served_pooled

log = logging.getLogger(__name__)

CHUNK = 16  # photos per compiled call: faster per photo on a CPU than 64 (cache), see above
MIN_IMAGES = 2000  # `auto`: at ~60 images/s saved per core-second this repays ~30 s compiling


def compile_wanted(n_images: int | None, setting: str | None = None) -> bool:
    """Whether a forward over `n_images` images (None: unknown, e.g. a matcher's stream)
    should be compiled, by `setting` (default: the `backbone_compile` setting,
    `ARTWATCH_BACKBONE_COMPILE`): `on`, `off`, or `auto` (from `MIN_IMAGES` images up).

    Raises ValueError for another value."""
    value = setting or get_settings().backbone_compile
    if value not in ("auto", "on", "off"):
        raise ValueError(f"backbone compile {value!r}: expected auto, on or off")
    if value != "auto":
        return value == "on"
    return n_images is not None and n_images >= MIN_IMAGES


class BackboneForward:
    """A timm backbone's (maps, pooled) and pooled-only inference forwards on one device, in
    `matcher.precision`'s number format: eager, or compiled by `torch.compile` (see the
    module). Inputs: N x 3 x R x R float32 normalised model inputs (channels_last); outputs
    float32 on the device: maps N x C x h x w and pooled N x C."""

    def __init__(self, backbone: torch.nn.Module, device: torch.device, *,
                 compiled: bool) -> None:
        self.backbone = backbone
        self.device = device
        self.precision = inference_precision(device)
        self._maps = self._pooled = None
        if compiled:
            # Dynamo keeps at most 8 compiled versions of a function and guards each on the
            # module it was traced with: a process that trains several bundles would run
            # eager from the fifth on. One compiled backbone at a time, so start afresh
            # (Inductor's disk cache makes the recompile ~7 s).
            torch.compiler.reset()
            options = {"freezing": True}
            self._maps = torch.compile(self._eager_maps, options=options)
            self._pooled = torch.compile(self._eager_pooled, options=options)

    @property
    def compiled(self) -> bool:
        return self._maps is not None

    @torch.inference_mode()
    def warm_up(self, resolution: int) -> None:
        """Compile both graphs now, on one chunk of zeros at `resolution` px, rather than in
        the first batch (a matcher worker's first listings would wait 10-30 s)."""
        if self.compiled:
            x = torch.zeros(CHUNK, 3, resolution, resolution, device=self.device)
            x = x.contiguous(memory_format=torch.channels_last)
            self.maps(x)
            self.pooled(x)

    def _eager_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return served_maps(self.backbone, x, self.device, self.precision)

    def _eager_pooled(self, x: torch.Tensor) -> torch.Tensor:
        return served_pooled(self.backbone, x, self.device, self.precision)

    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(last feature maps, pooled features) of a batch (`served_maps`)."""
        if self._maps is None or not len(x):
            return self._eager_maps(x)
        parts = self._chunked(self._maps, x)
        if parts is None:
            return self._eager_maps(x)
        return torch.cat([m for m, _ in parts]), torch.cat([p for _, p in parts])

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of a batch (`served_pooled`)."""
        if self._pooled is None or not len(x):
            return self._eager_pooled(x)
        parts = self._chunked(self._pooled, x)
        return self._eager_pooled(x) if parts is None else torch.cat(parts)

    def _chunked(self, fn: Callable, x: torch.Tensor) -> list | None:
        """`fn` over `x` in CHUNK-photo calls, the last one padded with zeros and trimmed;
        None (and the eager forward from now on) when compiling failed."""
        out = []
        try:
            for i in range(0, len(x), CHUNK):
                part = x[i : i + CHUNK]
                n = len(part)
                if n < CHUNK:
                    pad = part.new_zeros((CHUNK - n, *part.shape[1:]))
                    part = torch.cat([part, pad]).contiguous(memory_format=torch.channels_last)
                y = fn(part)
                out.append(tuple(t[:n] for t in y) if isinstance(y, tuple) else y[:n])
        except Exception as exc:  # no C++ compiler, an Inductor bug: eager is always right
            log.warning("compiling the backbone failed, it runs eager (slower, same features): "
                        "%s: %s", type(exc).__name__, (str(exc).splitlines() or [""])[0][:200])
            self._maps = self._pooled = None
            return None
        return out
