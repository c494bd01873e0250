"""What cropping to the object buys recognition (`matcher.crop`, SCDA boxes), before it is served.

    .venv/bin/python benchmarks/object_crop.py [--sets coil,generated] [--queries 6]

The photo sets of `benchmarks/recognition.py` (same seed, same split: COIL-100 from
`../shared/data/coil100` with 1-4 catalogue photos per object, and the generated catalogue),
each new photo of a catalogued object as it is (studio), through the marketplace simulator
(listing-style) and as a phone photo of the object small on a busy surface
(`training.views.phone_view`). Scorers, all the pretrained backbone's cosine kNN over the
catalogue photos (no training, so the change is the crop's alone):

* whole photo: the zero-training baseline;
* crop: the query embedded from its SCDA box (`matcher.crop.object_box`) re-cut from the
  original photo at full resolution;
* whole + crop: the best cosine of either embedding per catalogue photo (the "several crops
  when unsure" of the recognition issue: a wrong box cannot hide a whole-photo match);
* crop both sides: the catalogue photos cropped alike;
* masked pooling both sides: no second pass, the first pass's feature map averaged over the
  SCDA mask only (what SCDA itself does), for every photo.

Printed: top-1 and top-5 per kind and by catalogue photos per object, the mean share of the
photo the box keeps, and the extra cost (one more backbone pass per query, ms per photo).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from recognition import PhotoSet, add_set_arguments, photo_sets  # noqa: E402

from matcher.crop import activation_mask, object_box  # noqa: E402
from matcher.model import backbone_config, build_model  # noqa: E402
from matcher.preprocess import Preprocess  # noqa: E402
from training.views import phone_view  # noqa: E402

ARCH = "tf_efficientnet_lite0"
SCORERS = ("whole photo", "crop", "whole + crop", "crop both sides",
           "masked pooling both sides")


class Embedder:
    """Pretrained backbone: whole-photo and crop embeddings (L2-normalised, (n, d))."""

    def __init__(self) -> None:
        model, self.source = build_model(ARCH, 0, pretrained="auto")
        self.backbone = model.backbone.eval()
        cfg = backbone_config(ARCH)
        self.preprocess = Preprocess(cfg.resolution, cfg.mean, cfg.std)
        self.crop_seconds = 0.0

    @torch.inference_mode()
    def _maps(self, images: list[Image.Image]) -> torch.Tensor:
        return self.backbone.forward_features(self.preprocess.batch(images))

    @staticmethod
    def _pool(maps: torch.Tensor) -> np.ndarray:
        return torch.nn.functional.normalize(maps.mean((2, 3)).float(), dim=1).numpy()

    def embed(self, images: list[Image.Image], batch: int = 32
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(whole, crop, masked pooling, box area share) for `images`."""
        whole, crop, masked, share = [], [], [], []
        for i in range(0, len(images), batch):
            chunk = [im.convert("RGB") for im in images[i:i + batch]]
            maps = self._maps(chunk)
            whole.append(self._pool(maps))
            masks = torch.from_numpy(np.stack([activation_mask(m.float().numpy())
                                               for m in maps])).to(maps.dtype)[:, None]
            masked.append(torch.nn.functional.normalize(
                (maps * masks).sum((2, 3)) / masks.sum((2, 3)), dim=1).float().numpy())
            start = time.perf_counter()
            boxes = [object_box(m.float().numpy(), im.size, self.preprocess.resolution,
                                self.preprocess.fitted_size(*im.size))
                     for im, m in zip(chunk, maps, strict=True)]
            crop.append(self._pool(self._maps([im.crop(b.as_tuple())
                                               for im, b in zip(chunk, boxes, strict=True)])))
            self.crop_seconds += time.perf_counter() - start
            share += [b.area_share for b in boxes]
        return (np.concatenate(whole), np.concatenate(crop), np.concatenate(masked),
                np.array(share))


def _ranks(sims: np.ndarray, ref_labels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of each query's object among the objects, by best photo cosine."""
    objects = np.unique(ref_labels)
    per_object = np.stack([sims[:, ref_labels == o].max(1) for o in objects], 1)
    own = per_object[np.arange(len(labels)), np.searchsorted(objects, labels)]
    return (per_object > own[:, None]).sum(1)


def evaluate(ps: PhotoSet, embedder: Embedder) -> None:
    refs = [p.load() for p in ps.catalogue.photos]
    ref_labels = np.array([p.object_id for p in ps.catalogue.photos])
    r_whole, r_crop, r_masked, _ = embedder.embed(refs)
    catalogued = [n for n in ps.new if n.object_id is not None and n.kind == "studio"]
    listing = [n for n in ps.new if n.object_id is not None and n.kind == "listing"]
    phone = [phone_view(n.image, np.random.default_rng([7, i])) for i, n in enumerate(catalogued)]
    kinds = {"studio": ([n.image for n in catalogued], catalogued),
             "listing-style": ([n.image for n in listing], listing),
             "phone": (phone, catalogued)}
    print(f"\n## {ps.name}: {len(refs)} catalogue photos of {len(set(ref_labels))} objects "
          f"(pretrained {embedder.source})\n")
    print("| photos | n | box keeps | " + " | ".join(f"{s} top-1 / top-5" for s in SCORERS)
          + " |")
    print("|---|---|---|" + "---|" * len(SCORERS))
    by_ppo: dict[str, dict[int, list[str]]] = {}
    for kind, (images, meta) in kinds.items():
        labels = np.array([n.object_id for n in meta])
        ppo = np.array([n.ppo for n in meta])
        q_whole, q_crop, q_masked, share = embedder.embed(images)
        sims = {"whole photo": q_whole @ r_whole.T, "crop": q_crop @ r_whole.T,
                "whole + crop": np.maximum(q_whole @ r_whole.T, q_crop @ r_whole.T),
                "crop both sides": q_crop @ r_crop.T,
                "masked pooling both sides": q_masked @ r_masked.T}
        cells = []
        for scorer in SCORERS:
            ranks = _ranks(sims[scorer], ref_labels, labels)
            cells.append(f"{(ranks == 0).mean():.3f} / {(ranks < 5).mean():.3f}")
            for n in sorted(set(ppo)):
                by_ppo.setdefault(f"{kind}, {scorer}", {}).setdefault(int(n), []).append(
                    f"{(ranks[ppo == n] == 0).mean():.3f}")
        print(f"| {kind} | {len(labels)} | {share.mean():.2f} | " + " | ".join(cells) + " |")
    print("\nTop-1 by catalogue photos per object (1, 2, 3, 4):")
    for name, rows in by_ppo.items():
        print(f"  {name}: " + ", ".join(f"{n}: {v[0]}" for n, v in sorted(rows.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_set_arguments(parser)
    args = parser.parse_args()
    embedder = Embedder()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for ps in photo_sets(args, Path(tmp)):
            evaluate(ps, embedder)
    total = time.perf_counter() - start
    print(f"\nthe crop's extra backbone pass and box: {embedder.crop_seconds:.0f} s of "
          f"{total:.0f} s in all")


if __name__ == "__main__":
    main()
