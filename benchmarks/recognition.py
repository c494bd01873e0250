"""Recognition and the alert decision on photos no model saw, beside the zero-training baseline.

Two photo sets, both in one run:

* COIL-100 (`../shared/data/coil100`, 100 real objects x 72 turntable views): 20% of the
  objects are left out of the catalogue (the listings a correct system must not alert on); of
  the others a quarter each get 1, 2, 3 or 4 catalogue photos (views spread around the
  turntable); the remaining views are new photos, each used as it is ("studio") and through
  the marketplace simulator at a random web size ("listing": new background, light, crop,
  watermark, JPEG);
* a generated catalogue (`artwatch demo catalogue`, photos per object as the paper's Table 2)
  with new renders of its objects from unseen viewpoints (studio) and as listing photos, and
  generated objects in no catalogue.

The catalogue goes through `artwatch train`'s default recipe (`training.deploy`); new photos go
through the matcher's engine (`matcher.engine`: the bundle's embedding, the catalogue index
with its distractor background, geometric verification, the calibrated score) and the listing
decision (`matcher.scoring`: fusion over a listing's photos, the bundle's thresholds per
listing size). The baseline is the pretrained backbone with no training at all: cosine kNN over
the same catalogue photos, its acceptance threshold set on the same negative photos.

Printed per photo set: top-1/5/10, AUROC (catalogued vs uncatalogued photos by the best
score), accepted and correct-and-accepted at 1% false alerts (threshold at the 99th percentile
of the uncatalogued photos' best score), by photos per object; then the listing decision on
simulated listings of 1-4 listing photos at the bundle's operating points: promised false
alerts per 1,000 negative listings (and interval) vs measured, precision and recall.

    .venv/bin/python benchmarks/recognition.py                  # both sets, ~25-40 min on 2 cores
    .venv/bin/python benchmarks/recognition.py --sets coil --queries 4   # quicker
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from artwatch.demo.marketplace import simulate_listing_photo  # noqa: E402
from artwatch.images.decode import perceptual_hash_pair  # noqa: E402
from matcher.bundle import Bundle  # noqa: E402
from matcher.engine import reference_set, score_photos  # noqa: E402
from matcher.model import build_model  # noqa: E402
from matcher.scoring import (  # noqa: E402
    bucket_of,
    duplicate_groups,
    fuse_listing,
    operating_point,
    threshold_for,
)
from matcher.verify import extract  # noqa: E402
from training.catalogue import Catalogue, Photo, load_manifest  # noqa: E402
from training.deploy import DeployRequest, train_deploy  # noqa: E402

COIL = ROOT.parent / "shared" / "data" / "coil100"
POINTS = ("precision_0.95", "precision_0.99", "alerts_per_1000_5")


@dataclass
class NewPhoto:
    image: Image.Image
    object_id: str | None  # None: the object is in no catalogue
    kind: str  # studio | listing
    ppo: int  # catalogue photos of its object (0 when uncatalogued)


@dataclass
class PhotoSet:
    name: str
    catalogue: Catalogue
    new: list[NewPhoto]
    notes: dict = field(default_factory=dict)


def _listing(image: Image.Image, seed: int) -> Image.Image:
    return simulate_listing_photo([image], np.random.default_rng([seed, 991])).convert("RGB")


def coil_set(seed: int, queries: int) -> PhotoSet:
    full = load_manifest(COIL)
    rng = np.random.default_rng(seed)
    by_object: dict[str, list[Photo]] = {}
    for p in full.photos:
        by_object.setdefault(p.object_id, []).append(p)
    objects = sorted(by_object)
    rng.shuffle(objects)
    n_out = len(objects) // 5
    catalogue, new = [], []
    for i, obj in enumerate(objects):
        photos = sorted(by_object[obj], key=lambda p: p.source)
        n = 0 if i < n_out else 1 + (i - n_out) % 4
        start = int(rng.integers(0, len(photos)))
        chosen = {(start + j * len(photos) // n) % len(photos) for j in range(n)} if n else set()
        catalogue += [photos[j] for j in sorted(chosen)]
        rest = [j for j in range(len(photos)) if j not in chosen]
        for j in rng.choice(rest, min(queries, len(rest)), replace=False):
            img = photos[int(j)].load()
            ident = obj if n else None
            new.append(NewPhoto(img, ident, "studio", n))
            new.append(NewPhoto(_listing(img, seed * 100_003 + int(j) + 7 * i), ident,
                                "listing", n))
    cat = Catalogue(catalogue, {"kind": "coil100-subset", "seed": str(seed)})
    return PhotoSet("COIL-100", cat, new, {"objects": len(objects), "uncatalogued": n_out})


def generated_set(seed: int, n_objects: int, queries: int, workdir: Path) -> PhotoSet:
    from artwatch.demo import distractor_spec, generate_catalogue, object_spec
    from artwatch.demo.distractors import render_with_mask
    from artwatch.demo.marketplace import simulate_listing

    generate_catalogue(workdir, n_objects, seed=seed)
    cat = load_manifest(workdir)
    counts: dict[str, int] = {}
    for p in cat.photos:
        counts[p.object_id] = counts.get(p.object_id, 0) + 1
    new = []
    n_out = max(4, n_objects // 4)
    for i in range(n_objects + n_out):
        spec = object_spec(seed, i) if i < n_objects else distractor_spec(seed, 50_000 + i)
        ident = spec.object_id if i < n_objects else None
        for q in range(queries):
            rng = np.random.default_rng([seed, 4242, i, q])
            img, mask = render_with_mask(spec, rng, size=256)
            new.append(NewPhoto(img, ident, "studio", counts.get(spec.object_id, 0)))
            lst = simulate_listing([img], rng, masks=[mask]).image
            new.append(NewPhoto(lst, ident, "listing", counts.get(spec.object_id, 0)))
    return PhotoSet("generated", cat, new, {"objects": n_objects, "uncatalogued": n_out})


# --- scoring -----------------------------------------------------------------------------------


@dataclass
class Ranked:
    """Per new photo: ranked object ids (best first) and the best score."""

    ranked: list[list[str]]
    best: np.ndarray


def baseline_ranking(ps: PhotoSet, device: torch.device) -> Ranked:
    """Pretrained backbone, no training: cosine kNN over the catalogue photos."""
    from training.views import pooled_features

    model, _ = build_model("tf_efficientnet_lite0", 0, pretrained="pypi")
    from matcher.model import backbone_config
    from matcher.preprocess import Preprocess

    cfg = backbone_config("tf_efficientnet_lite0")
    pre = Preprocess(cfg.resolution, cfg.mean, cfg.std)

    def l2(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    refs = l2(pooled_features([p.load() for p in ps.catalogue.photos], model.backbone, pre,
                              device))
    queries = l2(pooled_features([n.image for n in ps.new], model.backbone, pre, device))
    objs = np.array([p.object_id for p in ps.catalogue.photos])
    uniq = sorted(set(objs))
    sims = queries @ refs.T
    per_obj = np.stack([sims[:, objs == o].max(1) for o in uniq], 1)
    order = np.argsort(-per_obj, 1)[:, :10]
    return Ranked([[uniq[j] for j in row] for row in order], per_obj.max(1))


@dataclass
class ArtwatchScores:
    ranked: Ranked
    photo_scores: list[dict[str, float]]  # per new photo: {object: calibrated probability}
    embeddings: np.ndarray
    phashes: list[tuple[int, int]]
    seconds: float


def artwatch_ranking(ps: PhotoSet, bundle: Bundle, local: bool) -> ArtwatchScores:
    """The matcher's engine: index the catalogue under the bundle, score every new photo."""
    t0 = time.perf_counter()
    photos = ps.catalogue.photos
    ref_emb = bundle.embed([p.load() for p in photos])
    ref_local = [extract(p.load()) for p in photos] if local else []
    obj_ids = sorted({p.object_id for p in photos})
    index = {o: i for i, o in enumerate(obj_ids)}
    refs = reference_set(bundle, ref_emb, np.array([index[p.object_id] for p in photos]),
                         [p.phash for p in photos])
    images = [n.image for n in ps.new]
    embeddings = bundle.embed(images)
    phashes = [perceptual_hash_pair(im) for im in images]
    ranked, best, scores = [], [], []
    for start in range(0, len(images), 64):
        sl = slice(start, start + 64)
        out = score_photos(
            bundle, refs, embeddings[sl], phashes[sl],
            query_picture=(lambda qi, s=start: images[s + qi]) if local else None,
            reference_local=(lambda row: ref_local[row]) if local else None,
        )
        for qi in range(len(embeddings[sl])):
            row = out.ranked(qi)
            ranked.append([obj_ids[o] for o, _, _ in row])
            best.append(row[0][1] if row else 0.0)
            scores.append({obj_ids[o]: p for o, p, _ in row})
    return ArtwatchScores(Ranked(ranked, np.array(best)), scores, embeddings, phashes,
                          time.perf_counter() - t0)


def photo_table(ps: PhotoSet, r: Ranked) -> dict:
    """top-k, AUROC, accepted / correct-and-accepted at 1% false alerts, by kind and ppo."""
    out: dict = {}
    for kind in ("studio", "listing"):
        idx = [i for i, n in enumerate(ps.new) if n.kind == kind]
        pos = [i for i in idx if ps.new[i].object_id is not None]
        neg = [i for i in idx if ps.new[i].object_id is None]
        cut = float(np.quantile(r.best[neg], 0.99)) if neg else np.inf
        row: dict = {"photos": len(pos), "negatives": len(neg)}
        for k in (1, 5, 10):
            row[f"top{k}"] = float(np.mean([ps.new[i].object_id in r.ranked[i][:k] for i in pos]))
        row["auroc"] = float(roc_auc_score([1] * len(pos) + [0] * len(neg),
                                           np.r_[r.best[pos], r.best[neg]]))
        row["accepted@1%"] = float(np.mean([r.best[i] > cut for i in pos]))
        row["correct_accepted@1%"] = float(np.mean(
            [r.best[i] > cut and r.ranked[i][0] == ps.new[i].object_id for i in pos]))
        by = {}
        for b in (1, 2, 3, 4):
            sel = [i for i in pos if min(ps.new[i].ppo, 4) == b]
            if sel:
                by[str(b) if b < 4 else "4+"] = {
                    "photos": len(sel),
                    "top1": float(np.mean([r.ranked[i][0] == ps.new[i].object_id for i in sel])),
                }
        row["by_photos_per_object"] = by
        out[kind] = row
    return out


def listing_table(ps: PhotoSet, scores: ArtwatchScores, bundle: Bundle, seed: int) -> dict:
    """Listings of 1-4 listing photos through fusion and the bundle's thresholds."""
    rng = np.random.default_rng(seed)
    listing_idx = [i for i, n in enumerate(ps.new) if n.kind == "listing"]
    by_obj: dict[str | None, list[int]] = {}
    for i in listing_idx:
        by_obj.setdefault(ps.new[i].object_id, []).append(i)
    listings: list[tuple[list[int], str | None]] = []
    for obj, idx in by_obj.items():
        if obj is None:
            continue
        idx = list(rng.permutation(idx))
        while idx:
            n = int(rng.integers(1, 5))
            listings.append(([int(v) for v in idx[:n]], obj))
            idx = idx[n:]
    neg = list(rng.permutation(by_obj.get(None, [])))
    while neg:
        n = int(rng.integers(1, 5))
        listings.append(([int(v) for v in neg[:n]], None))
        neg = neg[n:]
    spec = bundle.score
    decided = []
    for members, truth in listings:
        groups = duplicate_groups(scores.embeddings[members],
                                  [scores.phashes[i][0] for i in members])
        fused = fuse_listing(spec, [scores.photo_scores[i] for i in members], groups)
        best_obj, best_p = max(fused.items(), key=lambda kv: kv[1]) if fused else (None, 0.0)
        decided.append((truth, best_obj, best_p, len(set(groups))))
    out = {}
    for name in POINTS:
        point = operating_point(bundle.thresholds, name)
        alerts = [(t, o, p >= threshold_for(point, n), bucket_of(n)) for t, o, p, n in decided]
        negatives = [a for a in alerts if a[0] is None]
        positives = [a for a in alerts if a[0] is not None]
        right = sum(1 for t, o, a, _ in positives if a and o == t)
        n_alerts = sum(1 for *_, a, _ in [(x[0], x[1], x[2], x[3]) for x in alerts] if a)
        false = sum(1 for _, _, a, _ in negatives if a)
        promised = {b: v["per_1000"] for b, v in point["promise"].items()}
        intervals = {b: v["interval"] for b, v in point["promise"].items()}
        by_bucket = {}
        for b in sorted({a[3] for a in negatives}):
            sel = [a for a in negatives if a[3] == b]
            by_bucket[b] = {"negatives": len(sel),
                            "measured_per_1000": 1000.0 * sum(a[2] for a in sel) / len(sel),
                            "promised_per_1000": promised.get(b),
                            "interval": intervals.get(b)}
        out[name] = {
            "listings": len(alerts), "positives": len(positives), "negatives": len(negatives),
            "precision": right / n_alerts if n_alerts else float("nan"),
            "recall": right / len(positives) if positives else float("nan"),
            "false_alerts_per_1000": 1000.0 * false / max(1, len(negatives)),
            "by_size": by_bucket,
            "calibration": point["calibration"],
        }
    return out


def run_set(ps: PhotoSet, args: argparse.Namespace, workdir: Path) -> dict:
    device = torch.device(args.device)
    print(f"\n=== {ps.name}: {len(ps.catalogue.photos)} catalogue photos, "
          f"{sum(n.object_id is not None for n in ps.new)} new photos of catalogued objects, "
          f"{sum(n.object_id is None for n in ps.new)} of uncatalogued ones ===", flush=True)
    t0 = time.perf_counter()
    outcome = train_deploy(ps.catalogue, DeployRequest(
        out=workdir / f"bundle-{ps.name}", name=f"bench-{ps.name}", device=args.device,
        seed=args.seed, progress=False, local_features=not args.no_local,
    ), log=lambda m: print("  " + m, flush=True))
    train_s = time.perf_counter() - t0
    bundle = Bundle.load(outcome.path, device=device)
    base = baseline_ranking(ps, device)
    aw = artwatch_ranking(ps, bundle, local=not args.no_local)
    result = {
        "training_seconds": train_s,
        "matching_seconds": aw.seconds,
        "baseline": photo_table(ps, base),
        "artwatch": photo_table(ps, aw.ranked),
        "listings": listing_table(ps, aw, bundle, args.seed),
        "notes": ps.notes,
    }
    print_set(ps.name, result)
    return result


def print_set(name: str, r: dict) -> None:
    print(f"\n{name}: training {r['training_seconds']:.0f}s, matching "
          f"{r['matching_seconds']:.0f}s")
    cols = ("top1", "top5", "top10", "auroc", "accepted@1%", "correct_accepted@1%")
    print(f"{'photos':9s} {'scorer':22s} " + " ".join(f"{c:>19s}" for c in cols))
    for kind in ("studio", "listing"):
        for scorer in ("baseline", "artwatch"):
            row = r[scorer][kind]
            label = "pretrained kNN" if scorer == "baseline" else "artwatch"
            print(f"{kind:9s} {label:22s} " + " ".join(f"{row[c]:19.3f}" for c in cols))
        deltas = {c: r["artwatch"][kind][c] - r["baseline"][kind][c] for c in cols}
        print(f"{kind:9s} {'difference (points)':22s} "
              + " ".join(f"{100 * deltas[c]:+19.1f}" for c in cols))
    print("\ntop-1 by catalogue photos per object (baseline -> artwatch):")
    for kind in ("studio", "listing"):
        b = r["baseline"][kind]["by_photos_per_object"]
        a = r["artwatch"][kind]["by_photos_per_object"]
        print(f"  {kind:8s} " + "  ".join(
            f"{k}: {b[k]['top1']:.3f} -> {a[k]['top1']:.3f} (n={a[k]['photos']})" for k in a))
    print("\nlisting decision (listings of 1-4 listing photos):")
    for point, row in r["listings"].items():
        print(f"  {point}: precision {row['precision']:.3f} recall {row['recall']:.3f} "
              f"false alerts {row['false_alerts_per_1000']:.1f}/1000 "
              f"({row['positives']} positive, {row['negatives']} negative listings)")
        for b, v in row["by_size"].items():
            lo, hi = v["interval"] or (None, None)
            promised = v["promised_per_1000"]
            print(f"      {b} photo(s): measured {v['measured_per_1000']:.1f}/1000 of "
                  f"{v['negatives']}; promised "
                  + (f"{promised:.1f} [{lo:.1f}, {hi:.1f}]" if promised is not None else "-"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="coil,generated")
    parser.add_argument("--queries", type=int, default=6, help="new photos per object and kind")
    parser.add_argument("--generated-objects", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-local", action="store_true", help="skip local features")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {}
    with tempfile.TemporaryDirectory(prefix="artwatch-recognition-") as tmp:
        work = Path(tmp)
        for name in args.sets.split(","):
            if name == "coil":
                if not COIL.is_dir():
                    print(f"skipping COIL-100: {COIL} not found")
                    continue
                ps = coil_set(args.seed, args.queries)
            elif name == "generated":
                ps = generated_set(args.seed, args.generated_objects, args.queries,
                                   work / "generated")
            else:
                raise SystemExit(f"unknown set {name!r} (coil, generated)")
            results[ps.name] = run_set(ps, args, work)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
