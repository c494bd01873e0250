"""How the backbone's last feature maps become one vector: timm's average or generalized mean.

Generalized-mean (GeM) pooling, `f_c = (mean_hw x_chw^p)^(1/p)` (Radenovic, Tolias & Chum,
"Fine-tuning CNN image retrieval with no human annotation", TPAMI 2018), sits between average
(p = 1) and max pooling (p -> inf): the strongest responses, which fall on the object, count
more than the background's many weak ones, so a listing photo's clutter moves the vector less.
With p = 2 on a frozen ImageNet backbone it raised correct-and-accepted at 1% false alerts on
the COIL-100 benchmark, held it on the generated one, and kept the listing decision's
false-alert promises on both; p = 3 broke one (docs/recognition.md, "Pooling"). p is fixed,
not learned: the backbone is never trained in the deployment recipe.

The pooling is part of a bundle (bundle.json `pooling`; a bundle without one pools by average,
as every bundle before it did): the matcher, indexing and calibration must pool alike.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

GEM_P = 2.0
AVERAGE = {"name": "avg"}
SERVED = {"name": "gem", "p": GEM_P}
CHOICES = ("gem", "avg")


class GeM(nn.Module):
    """Generalized-mean pooling: maps N x C x h x w (non-negative, as after EfficientNet's
    ReLU6) -> N x C float32.

    Computed in float32 whatever format the backbone ran in (a bfloat16 power and mean over
    49 cells would cost digits the whitening then magnifies). `p` is a plain attribute, not a
    parameter, so a bundle's weights file is the same with either pooling."""

    def __init__(self, p: float = GEM_P, eps: float = 1e-6) -> None:
        super().__init__()
        if not p > 0:
            raise ValueError(f"GeM p must be positive, got {p}")
        self.p = float(p)
        self.eps = float(eps)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        x = maps.float().clamp(min=self.eps).pow(self.p)
        return x.mean(dim=(2, 3)).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def pooling_spec(choice: str) -> dict[str, Any]:
    """A `--pooling` choice ("gem": GeM with p = `GEM_P`; "avg": timm's average) -> the spec
    recorded in bundle.json. Raises ValueError for anything else."""
    if choice == "gem":
        return dict(SERVED)
    if choice == "avg":
        return dict(AVERAGE)
    raise ValueError(f"pooling {choice!r}: expected one of {', '.join(CHOICES)}")


def set_pooling(backbone: nn.Module, spec: dict[str, Any] | None) -> None:
    """Give a timm backbone built with `num_classes=0` the pooling `spec` (None: average).

    Replaces its `global_pool`, which `forward_head` applies to `forward_features`' maps, so
    `backbone(x)` and `forward_head(maps, pre_logits=True)` both pool this way. Raises
    ValueError for a spec this code does not know (a bundle from a newer artwatch)."""
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise ValueError(f"pooling {spec!r}: expected an object with a name")
    name = spec.get("name")
    if name == "avg":
        return
    if name != "gem":
        raise ValueError(f"pooling {name!r}: this artwatch knows avg and gem")
    if not hasattr(backbone, "global_pool"):
        raise ValueError(f"{type(backbone).__name__} has no global_pool to replace")
    try:
        p = float(spec["p"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"GeM pooling without a numeric p: {spec!r}") from None
    backbone.global_pool = GeM(p)


def pooling_sentence(spec: dict[str, Any] | None) -> str:
    """A report's words for a bundle's pooling spec."""
    if spec and spec.get("name") == "gem":
        return f"GeM pooling (p = {float(spec['p']):g})"
    return "average pooling"
