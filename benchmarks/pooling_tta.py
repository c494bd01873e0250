"""Pooling and test-time augmentation of the frozen backbone, before either is served.

    .venv/bin/python benchmarks/pooling_tta.py [--sets coil,generated]

The photo sets of `benchmarks/recognition.py` (same seed, same split and new photos: COIL-100
from `../shared/data/coil100` with 1-4 catalogue photos per object and 20% of the objects
uncatalogued, and the generated catalogue with generated objects in no catalogue), studio and
listing-style new photos. Every variant is scored two ways, with no evidence and no calibrated
score, so that the representation alone is compared:

* kNN: cosine over the catalogue photos' pooled features (the first row, timm's average
  pooling at the backbone's 224 px, is the zero-training baseline);
* whitened: the deployment recipe's learned whitening (`training.whitening`, its size rules
  for the catalogue) fitted on every catalogue photo and 4 synthetic listing views of it
  (`training.views.listing_view`), then cosine.

Variants: the pooling of the last feature maps (average; generalized mean, GeM, p = 2, 3, 4:
Radenovic, Tolias & Chum, TPAMI 2018; max), and test-time augmentation with average pooling:
the mean of a photo's L2-normalised pooled features over input sizes (192-288 px) and its
mirror image, catalogue photos and queries alike. Printed per set: top-1 and correct and
accepted at 1% false alerts (the best similarity's threshold at the 99th percentile of the
uncatalogued objects' photos) for studio and listing-style photos, and each variant's
backbone work per photo against one 224 px pass. docs/recognition.md ("Pooling, measured and
not adopted") quotes a run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from recognition import (  # noqa: E402
    PhotoSet,
    add_set_arguments,
    photo_sets,
    photo_table,
    rank_by_similarity,
)

from matcher.model import backbone_config, build_model  # noqa: E402
from matcher.pooling import GeM  # noqa: E402
from matcher.precision import backbone_autocast  # noqa: E402
from matcher.preprocess import Preprocess  # noqa: E402
from training.views import listing_view, photo_seed  # noqa: E402
from training.whitening import default_dim, default_shrink, fit_whitening  # noqa: E402

ARCH = "tf_efficientnet_lite0"
VIEWS = 4
KINDS = ("studio", "listing")
SIZES = (192, 224, 256, 288)
POOLINGS = ("avg", "gem2", "gem3", "gem4", "max")
# name -> the (input size, mirrored, pooling) passes whose features are averaged
VARIANTS: dict[str, list[tuple[int, bool, str]]] = {
    **{f"{pool}, 224 px": [(224, False, pool)] for pool in POOLINGS},
    "avg, 224 px and its mirror image": [(224, False, "avg"), (224, True, "avg")],
    "avg, 256 px": [(256, False, "avg")],
    "avg, 288 px": [(288, False, "avg")],
    "avg, 224 + 288 px": [(224, False, "avg"), (288, False, "avg")],
    "avg, 192 + 224 + 256 px": [(s, False, "avg") for s in (192, 224, 256)],
    "avg, the three sizes and their mirror images":
        [(s, m, "avg") for s in (192, 224, 256) for m in (False, True)],
}


def _pool(maps: torch.Tensor, pooling: str) -> np.ndarray:
    """(N x C x h x w) float maps -> (N x C) pooled features (GeM: the served module)."""
    if pooling == "avg":
        return maps.mean((2, 3)).numpy()
    if pooling == "max":
        return maps.amax((2, 3)).numpy()
    return GeM(float(pooling.removeprefix("gem")))(maps).numpy()


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Passes:
    """Pooled features of every (size, mirrored, pooling) pass the variants need."""

    def __init__(self) -> None:
        model, self.source = build_model(ARCH, 0, pretrained="auto")
        self.backbone = model.backbone.eval().to(memory_format=torch.channels_last)
        cfg = backbone_config(ARCH)
        self.preprocess = {s: Preprocess(s, cfg.mean, cfg.std) for s in SIZES}
        self.device = torch.device("cpu")
        self.needed = sorted({(s, m) for passes in VARIANTS.values() for s, m, _ in passes})

    @torch.inference_mode()
    def features(self, images: list[Image.Image], batch: int = 32
                 ) -> dict[tuple[int, bool, str], np.ndarray]:
        out: dict[tuple[int, bool, str], list[np.ndarray]] = {}
        for i in range(0, len(images), batch):
            chunk = [im.convert("RGB") for im in images[i:i + batch]]
            for size, mirrored in self.needed:
                x = self.preprocess[size].batch(chunk)
                x = torch.flip(x, dims=[3]) if mirrored else x
                with backbone_autocast(self.device):
                    maps = self.backbone.forward_features(
                        x.contiguous(memory_format=torch.channels_last)).float()
                for pooling in POOLINGS:
                    out.setdefault((size, mirrored, pooling), []).append(_pool(maps, pooling))
        return {k: np.concatenate(v) for k, v in out.items()}


def _combine(feats: dict[tuple[int, bool, str], np.ndarray],
             passes: list[tuple[int, bool, str]]) -> np.ndarray:
    return _l2(sum(_l2(feats[p]) for p in passes))


def evaluate(ps: PhotoSet, passes: Passes) -> None:
    started = time.perf_counter()
    photos = ps.catalogue.photos
    images, objects = [], []
    for p in photos:
        original = p.load().convert("RGB")
        images.append(original)
        images += [listing_view(original, photo_seed(0, p.key, j), 224) for j in range(VIEWS)]
        objects += [p.object_id] * (1 + VIEWS)
    is_ref = np.arange(len(images)) % (1 + VIEWS) == 0
    groups = np.unique(np.array(objects), return_inverse=True)[1]
    fit = passes.features(images)
    n_objects = len({p.object_id for p in photos})
    measured = replace(ps, new=[n for n in ps.new if n.kind in KINDS])
    queried = passes.features([n.image for n in measured.new])
    print(f"\n## {ps.name}: {len(photos)} catalogue photos of {n_objects} objects, "
          f"{VIEWS} listing views each to fit the whitening (pretrained {passes.source}; "
          f"{time.perf_counter() - started:.0f} s of backbone passes)\n")
    print("| variant | work | studio kNN | studio whitened | listing kNN | listing whitened |")
    print("|---|---|---|---|---|---|")
    ref_objects = [o for o, ref in zip(objects, is_ref, strict=True) if ref]
    for name, variant in VARIANTS.items():
        x, q = _combine(fit, variant), _combine(queried, variant)
        whitening = fit_whitening(x, groups, dim=default_dim(n_objects, x.shape[1]),
                                  shrink=default_shrink(n_objects))
        raw = photo_table(measured, rank_by_similarity(q @ x[is_ref].T, ref_objects))
        white = photo_table(measured, rank_by_similarity(
            whitening.apply(q) @ whitening.apply(x[is_ref]).T, ref_objects))
        cells = [f"{table[kind]['top1']:.3f} / {table[kind]['correct_accepted@1%']:.3f}"
                 for kind in KINDS for table in (raw, white)]
        work = sum((size / 224) ** 2 for size, _, _ in variant)
        print(f"| {name} | {work:.1f}x | " + " | ".join(cells) + " |", flush=True)
    print("\n(top-1 / correct and accepted at 1% false alerts)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_set_arguments(parser)
    args = parser.parse_args()
    passes = Passes()
    with tempfile.TemporaryDirectory() as tmp:
        for ps in photo_sets(args, Path(tmp)):
            evaluate(ps, passes)


if __name__ == "__main__":
    main()
