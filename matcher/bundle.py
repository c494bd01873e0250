"""Model bundles: a directory the matcher loads and training writes.

`model.safetensors` holds the weights (no pickles, so loading a bundle never runs code);
`bundle.json` holds everything needed to use them: the recipe (`deploy`: frozen backbone +
learned whitening; `paper`: the paper's finetuned classifier head), architecture, input
resolution and mean/std, the ordered object ids it was trained on, embedding dimension, the
calibrated score (`score`, see `matcher.scoring`) and the listing-level thresholds per operating
point with the false-alert rates they promise, metrics, the training manifest hash, the
pretrained source, the number format its backbone was calibrated in (`matcher.precision`)
and when it was made. `distractors.safetensors` holds the distractor bank's
embeddings (the background `matcher.evidence` normalises similarities against);
`vlad.safetensors` the visual words of the local first stage (`matcher.vlad`), when the
bundle has one (`local_first_stage` in bundle.json). Preprocessing
comes from `matcher.preprocess`, the same code training used; each photo is resized from its
original.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from matcher.compiled import BackboneForward, compile_wanted
from matcher.evidence import LOCAL_CANDIDATES, check_local_candidates
from matcher.model import ArtefactClassifier
from matcher.precision import inference_precision
from matcher.preprocess import Preprocess
from matcher.verify import MAX_SIDE

log = logging.getLogger(__name__)
BUNDLE_JSON = "bundle.json"
WEIGHTS = "model.safetensors"
BANK_FILE = "distractors.safetensors"
VLAD_FILE = "vlad.safetensors"
FORMAT_VERSION = 1
REQUIRED = ("architecture", "resolution", "mean", "std", "objects", "embedding_dim", "temperature")


def local_stage_info(codebook: np.ndarray, candidates: int = LOCAL_CANDIDATES) -> dict[str, Any]:
    """bundle.json's `local_first_stage` entry for a codebook written by `save_codebook`,
    whose calibration nominated `candidates` objects per photo."""
    return {"file": VLAD_FILE, "words": int(len(codebook)), "candidates": int(candidates),
            "method": "VLAD of RootSIFT"}


def save_codebook(path: Path, codebook: np.ndarray) -> None:
    """Write the local first stage's visual words (k x 128 float32, `matcher.vlad`) into
    the bundle directory `path` (bundle.json names it: `local_stage_info`)."""
    words = torch.from_numpy(np.ascontiguousarray(codebook, dtype=np.float32))
    save_file({"codebook": words}, str(Path(path) / VLAD_FILE))


class BundleError(ValueError):
    """A bundle directory is missing files or describes itself inconsistently."""


class BundleExists(FileExistsError):
    """The output directory already holds a finished bundle (bundles are never overwritten)."""


def ensure_new(out: Path) -> None:
    """Refuse to train into `out` when it already holds a bundle.

    Raises:
        BundleExists: `out/bundle.json` exists; a registered bundle is immutable, so the caller
            must pick another name or directory.
    """
    if (Path(out) / BUNDLE_JSON).exists():
        raise BundleExists(f"{out} already holds a bundle; choose another --name/--out")


@dataclass(frozen=True)
class Predictions:
    """Calibrated probabilities (N x objects) and each photo's top-k [(object_id, p)]."""

    probs: np.ndarray
    topk: list[list[tuple[str, float]]]
    embeddings: np.ndarray | None = None


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN / inf become null (PostgreSQL jsonb rejects them)."""
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


def save_bundle(path: Path, model: ArtefactClassifier, info: dict[str, Any]) -> Path:
    """Write weights and bundle.json into `path` (created); returns the path."""
    missing = [k for k in REQUIRED if k not in info]
    if missing:
        raise BundleError(f"bundle info lacks {missing}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS), metadata={"architecture": info["architecture"]})
    payload = _finite({"format_version": FORMAT_VERSION, **info})
    (path / BUNDLE_JSON).write_text(json.dumps(payload, indent=1, default=float), encoding="utf-8")
    return path


def read_info(path: Path) -> dict[str, Any]:
    """bundle.json of a bundle directory, checked for the fields loading needs."""
    file = Path(path) / BUNDLE_JSON
    if not file.is_file():
        raise BundleError(f"{path}: not a bundle (no {BUNDLE_JSON})")
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{file}: invalid JSON ({exc})") from None
    missing = [k for k in REQUIRED if k not in info]
    if missing:
        raise BundleError(f"{file}: missing {missing}")
    return info


def has_classifier_head(info: dict[str, Any]) -> bool:
    """Bundles of the paper recipe (and all written before recipes existed) have the head."""
    return info.get("head", "paper") == "paper"


class Bundle:
    """A loaded model bundle: `predict()` and `embed()` over PIL photos."""

    def __init__(
        self, path: Path, info: dict[str, Any], model: ArtefactClassifier, device: torch.device
    ) -> None:
        self.path = Path(path)
        self.info = info
        self.model = model
        self.device = device
        # A matcher serves a stream of unknown length: eager unless ARTWATCH_BACKBONE_COMPILE=on
        # (`matcher.compiled`: loading then compiles, 10-30 s, and every batch is faster),
        # the same features either way.
        self.backbone_forward = BackboneForward(model.backbone, device,
                                                compiled=compile_wanted(None))
        self.objects: list[str] = list(info["objects"])
        self.temperature = float(info["temperature"])
        self.thresholds: dict[str, Any] = dict(info.get("thresholds", {}))
        self.score: dict[str, Any] = dict(info.get("score") or {})
        self.embedding_dim = int(info["embedding_dim"])
        self.bank = self._load_bank()
        self.codebook = self._load_codebook()
        self.preprocess = Preprocess(
            int(info["resolution"]),
            tuple(info["mean"]),
            tuple(info["std"]),  # type: ignore[arg-type]
        )
        self.backbone_forward.warm_up(self.preprocess.resolution)

    @classmethod
    def load(cls, path: Path | str, device: str | torch.device = "cpu") -> Bundle:
        path = Path(path)
        info = read_info(path)
        weights = path / WEIGHTS
        if not weights.is_file():
            raise BundleError(f"{path}: no {WEIGHTS}")
        try:
            model = ArtefactClassifier(
                info["architecture"],
                len(info["objects"]) if has_classifier_head(info) else 0,
                whitening_dim=info.get("whitening_dim"),
                pooling=info.get("pooling"),
            )
        except RuntimeError as exc:  # timm does not know the architecture
            raise BundleError(f"{path}: cannot build {info['architecture']!r}: {exc}") from None
        except ValueError as exc:  # a pooling this artwatch does not know
            raise BundleError(f"{path}: {exc}") from None
        try:
            model.load_state_dict(load_file(str(weights)), strict=True)
        except Exception as exc:  # shape/key mismatch, or a truncated safetensors file
            raise BundleError(
                f"{weights}: weights do not fit {info['architecture']}: {exc}"
            ) from None
        if model.embedding_dim != int(info["embedding_dim"]):
            raise BundleError(f"{path}: embedding_dim disagrees with the architecture")
        dev = torch.device(device)
        # channels_last on the CPU too: measured ~2x the forward rate of Lite0 at 224 on this
        # project's 2-core machine (oneDNN's NHWC convolutions), the same outputs.
        model = model.to(dev).eval().to(memory_format=torch.channels_last)
        calibrated_in = info.get("inference_precision")
        if calibrated_in and calibrated_in != inference_precision(dev):
            log.warning("bundle %s was calibrated on %s features, this %s serves %s ones "
                        "(matcher.precision: features within ~0.9995 cosine)", path,
                        calibrated_in, dev.type, inference_precision(dev))
        return cls(path, info, model, dev)

    @property
    def name(self) -> str:
        return str(self.info.get("name", self.path.name))

    def _load_bank(self) -> np.ndarray:
        """The distractor bank's embeddings (n x embedding_dim); empty without one."""
        spec = self.info.get("distractor_bank") or {}
        file = self.path / str(spec.get("file", BANK_FILE))
        if not file.is_file():
            return np.zeros((0, self.embedding_dim), np.float32)
        try:
            bank = load_file(str(file))["bank"].float().numpy()
        except Exception as exc:  # a truncated or foreign file
            raise BundleError(f"{file}: unreadable distractor bank: {exc}") from None
        if bank.ndim != 2 or bank.shape[1] != self.embedding_dim:
            raise BundleError(f"{file}: bank shape {tuple(bank.shape)} does not fit the model")
        return bank

    def _load_codebook(self) -> np.ndarray | None:
        """The local first stage's visual words (k x 128, `matcher.vlad`); None without one."""
        spec = self.info.get("local_first_stage")
        if not spec:
            return None
        file = self.path / str(spec.get("file", VLAD_FILE))
        try:
            codebook = load_file(str(file))["codebook"].float().numpy()
        except Exception as exc:  # missing, truncated or foreign
            raise BundleError(f"{file}: unreadable local first stage codebook: {exc}") from None
        if codebook.ndim != 2 or codebook.shape[1] != 128:
            raise BundleError(f"{file}: codebook shape {tuple(codebook.shape)} is not (k x 128)")
        try:
            check_local_candidates(spec.get("candidates", LOCAL_CANDIDATES))
        except ValueError as exc:
            raise BundleError(f"{self.path / BUNDLE_JSON}: local_first_stage {exc}") from None
        return codebook

    @property
    def has_classifier(self) -> bool:
        return self.model.head is not None

    def _input(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 N x R x R x 3 pixels -> normalised channels_last model input on the device."""
        x = self.preprocess.normalise(pixels.to(self.device, non_blocking=True))
        return x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def forward_pixels(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw logits, L2-normalised embeddings), float32 on the CPU, for model-input pixels.

        `pixels`: N x R x R x 3 uint8 (what `Preprocess.fit` / `matcher.decode` produce), on
        the CPU or already on the model's device. Normalised on the device (uint8 travels,
        4x less than floats); NHWC memory viewed as NCHW is channels_last already. The
        backbone runs in `matcher.precision`'s format for the device (bfloat16 on CUDA and on
        CPUs with native bfloat16), the whitening and the head in float32.
        """
        out, emb = self.model.heads(self.backbone_forward.pooled(self._input(pixels)))
        return out.float().cpu(), emb.float().cpu()

    @torch.inference_mode()
    def forward_maps(self, pixels: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """(last feature maps N x C x h x w float32 numpy, pooled features N x C float32 on
        the CPU) for model-input pixels as `forward_pixels` takes them: the first pass of
        a query photo whose object crop (`matcher.crop`) may be embedded instead."""
        maps, pooled = self.backbone_forward.maps(self._input(pixels))
        return maps.cpu().numpy(), pooled.cpu()

    @torch.inference_mode()
    def forward_pooled(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw logits, L2-normalised embeddings) from pooled features (N x C float32): the
        whitening and head of `forward_pixels`, in float32."""
        out, emb = self.model.heads(pooled.to(self.device).float())
        return out.float().cpu(), emb.float().cpu()

    @property
    def query_side(self) -> int:
        """The longest side, in pixels, this bundle's listing photos are matched at by local
        features (`local_matching` in bundle.json, `matcher.verify.query_side`); bundles
        calibrated before it was recorded matched them as catalogue photos, at MAX_SIDE."""
        return int(self.info.get("local_matching", {}).get("query_side", MAX_SIDE))

    @property
    def local_candidates(self) -> int:
        """Objects the local first stage nominates per photo (`candidates` of
        `local_first_stage` in bundle.json): the number its calibration saw, which the matcher
        must use too (`artwatch train --local-candidates`)."""
        return int((self.info.get("local_first_stage") or {}).get("candidates",
                                                                  LOCAL_CANDIDATES))

    @property
    def crops_queries(self) -> bool:
        """Whether this bundle was calibrated on queries embedded from their object crops
        (`query_crop` in bundle.json): then the matcher must embed them so too."""
        return bool(self.info.get("query_crop"))

    def forward(
        self, images: Sequence[Image.Image], batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """(raw logits, L2-normalised embeddings) for photos, in batches."""
        logits, embeds = [], []
        for start in range(0, len(images), batch_size):
            pixels = np.stack([self.preprocess.fit(im) for im in images[start:start + batch_size]])
            out, emb = self.forward_pixels(torch.from_numpy(pixels))
            logits.append(out)
            embeds.append(emb)
        if not logits:
            return (
                np.zeros((0, len(self.objects)), np.float32),
                np.zeros((0, self.embedding_dim), np.float32),
            )
        return torch.cat(logits).numpy(), torch.cat(embeds).numpy()

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Temperature-scaled softmax probabilities."""
        x = torch.from_numpy(np.asarray(logits, dtype=np.float32)) / self.temperature
        return torch.softmax(x, dim=1).numpy()

    def predict(
        self, images: Sequence[Image.Image], k: int = 5, with_embeddings: bool = False
    ) -> Predictions:
        """Calibrated probabilities and the top-k objects per photo."""
        logits, embeds = self.forward(images)
        probs = self.calibrated(logits)
        k = min(k, len(self.objects))
        topk = []
        for row in probs:
            idx = np.argsort(-row, kind="stable")[:k]
            topk.append([(self.objects[i], float(row[i])) for i in idx])
        return Predictions(probs, topk, embeds if with_embeddings else None)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """L2-normalised embeddings (N x embedding_dim, float32) for retrieval."""
        return self.forward(images)[1]
