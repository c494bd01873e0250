"""First stage for flat objects photographed small in clutter: global embedding vs VLAD.

    .venv/bin/python benchmarks/flat_objects.py [--objects 300] [--queries 150] [--k 64]

The matcher's first stage is a global embedding: its top candidates are the only ones that
local features ever verify. For a flat object (a coin, a tablet face, a print) shown small
in a cluttered phone photo, the object is a few percent of the pixels and a global
embedding mostly describes the clutter; local features still match the object's surface.
This script measures how often the right object reaches the candidates at all, which is
what decides whether geometric verification can help (the recognition issue: "a first stage
that finds flat objects at all needs local features too, e.g. ASMK/VLAD").

Catalogue: `--objects` generated flat objects (coins and tablets of `artwatch.demo`), one
museum photo each. New photos: for `--queries` of them, a phone photo in clutter made by
the marketplace simulator from the museum photo (the same surface: cut out, perspective,
object 12-30% of the photo's height on a cluttered table, phone camera, JPEG), and as many
phone photos of flat objects the catalogue does not have (another seed) as negatives.

Scorers, each ranking every catalogue object (top-1/5/20, and correct and accepted at 1%
false alerts: the threshold at the 99th percentile of the negatives' best score):

* pretrained kNN: EfficientNet-Lite0 pooled features, cosine (the zero-training baseline);
* VLAD (`matcher.vlad`): RootSIFT (`matcher.verify.extract`, the verifier's own features, the
  phone photos at the listing size `extract_query` gives them)
  aggregated over a `--k`-word codebook fitted on the catalogue's descriptors, cosine;
* each first stage's top-20 (and their union) re-ranked by MAGSAC++ homography inliers
  (`matcher.verify.verify`, best of the object's photos), score = inliers;
* artwatch: a bundle trained on this catalogue by `artwatch train`'s defaults and the
  matcher's engine (`matcher.engine.score_photos`: global and local first stages, calibrated
  evidence, the top candidates verified), its calibrated probability as the score;
  `--vlad-words 0` trains it without the local first stage (as before it existed).

Not the product path: a measurement to decide whether the matcher needs a local-feature
first stage, and of what kind.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from artwatch.demo.artefacts import object_spec  # noqa: E402
from artwatch.demo.catalogue import generate_catalogue, read_manifest  # noqa: E402
from artwatch.demo.marketplace import PHONE_IN_CLUTTER as PHONE  # noqa: E402
from artwatch.demo.marketplace import simulate_listing_photo  # noqa: E402
from matcher.evidence import LOCAL_CANDIDATES  # noqa: E402

FLAT = ("coin", "tablet")
DEPTH = 20


def flat_catalogue(workdir: Path, seed: int, n: int) -> list[dict[str, str]]:
    """Render (or reuse) `n` flat objects of `seed`, one photo each; manifest rows."""
    out = workdir / f"flat-{seed}-{n}"
    if not (out / "manifest.csv").is_file():
        indices, i = [], 0
        while len(indices) < n:
            if object_spec(seed, i).family in FLAT:
                indices.append(i)
            i += 1
        with tqdm(total=n, desc=f"rendering flat objects (seed {seed})", unit="object") as bar:
            generate_catalogue(out, n, seed=seed, size=384, supersample=1,
                               photos=lambda _: 1, indices=indices,
                               progress=lambda done, _: bar.update(done - bar.n))
    return [{**row, "path": str(out / row["image"])} for row in read_manifest(out)]


def scores_table(name: str, sims: np.ndarray, labels: np.ndarray, negatives: np.ndarray) -> dict:
    """top-k and correct-and-accepted at 1% FA of a (queries x objects) score matrix."""
    order = np.argsort(-sims, 1)
    hit = order == labels[:, None]
    best = sims.max(1)
    neg_best = negatives.max(1)
    cut = float(np.quantile(neg_best, 0.99))
    row = {f"top{k}": float(hit[:, :k].any(1).mean()) for k in (1, 5, DEPTH)}
    row["c&a@1%"] = float(((best > cut) & (order[:, 0] == labels)).mean())
    print(f"  {name:42s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=300, help="catalogued flat objects")
    parser.add_argument("--queries", type=int, default=150, help="phone photos of them")
    parser.add_argument("--k", type=int, default=64, help="VLAD codebook words")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/artwatch-flat-objects"))
    parser.add_argument("--vlad-words", type=int, default=64,
                        help="the trained bundle's local first stage (0: none)")
    parser.add_argument("--verified-model", default="auto",
                        choices=("auto", "logistic", "trees"),
                        help="the bundle's verified photo score (auto: chosen out of fold)")
    parser.add_argument("--local-candidates", type=int, default=LOCAL_CANDIDATES,
                        help="objects the bundle's local first stage nominates per photo")
    parser.add_argument("--no-product", action="store_true",
                        help="skip training a bundle and the matcher's own scoring")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from matcher.model import backbone_config, build_model
    from matcher.preprocess import Preprocess
    from matcher.verify import extract, extract_query, verify
    from matcher.vlad import encode_all, fit_codebook
    from training.views import pooled_features

    torch.set_num_threads(2)
    started = time.perf_counter()
    catalogue = flat_catalogue(args.workdir, args.seed, args.objects)
    others = flat_catalogue(args.workdir, args.seed + 1, args.queries)
    photos = [Image.open(r["path"]).convert("RGB") for r in catalogue]
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(photos), args.queries, replace=False)
    queries = [simulate_listing_photo(photos[i], rng, config=PHONE) for i in picks]
    negatives = [simulate_listing_photo(Image.open(r["path"]).convert("RGB"), rng, config=PHONE)
                 for r in others]
    labels = np.asarray(picks)
    print(f"{len(photos)} catalogued flat objects (1 photo each), {len(queries)} phone photos "
          f"of them, {len(negatives)} of uncatalogued flat objects", flush=True)

    model, _ = build_model("tf_efficientnet_lite0", 0, pretrained="pypi")
    cfg = backbone_config("tf_efficientnet_lite0")
    pre = Preprocess(cfg.resolution, cfg.mean, cfg.std)
    device = torch.device("cpu")

    def l2(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    ref_g = l2(pooled_features(photos, model.backbone, pre, device))
    glob_pos = l2(pooled_features(queries, model.backbone, pre, device)) @ ref_g.T
    glob_neg = l2(pooled_features(negatives, model.backbone, pre, device)) @ ref_g.T

    ref_l = [extract(p) for p in tqdm(photos, desc="RootSIFT, catalogue")]
    pos_l = [extract_query(p) for p in tqdm(queries, desc="RootSIFT, phone photos")]
    neg_l = [extract_query(p) for p in tqdm(negatives, desc="RootSIFT, negatives")]
    codebook = fit_codebook(ref_l, args.k, args.seed)
    ref_v = encode_all(ref_l, codebook)
    vlad_pos = encode_all(pos_l, codebook) @ ref_v.T
    vlad_neg = encode_all(neg_l, codebook) @ ref_v.T

    print("\nscorer (every catalogue object ranked)", flush=True)
    table = {
        "pretrained kNN (baseline)": scores_table("pretrained kNN (baseline)", glob_pos, labels,
                                                  glob_neg),
        f"VLAD, {args.k} words": scores_table(f"VLAD, {args.k} words", vlad_pos, labels,
                                              vlad_neg),
    }

    def inliers(sims_g: np.ndarray, sims_v: np.ndarray, local: list, which: str) -> np.ndarray:
        out = np.full(sims_g.shape, -1.0)
        for qi in tqdm(range(len(local)), desc=f"verifying, {which}", leave=False):
            cands: set[int] = set()
            if which in ("global", "union"):
                cands |= set(np.argsort(-sims_g[qi])[:DEPTH].tolist())
            if which in ("VLAD", "union"):
                cands |= set(np.argsort(-sims_v[qi])[:DEPTH].tolist())
            for c in cands:  # inliers; the first stage's similarity breaks ties
                out[qi, c] = verify(local[qi], ref_l[c]).h_inliers + 0.5 * sims_g[qi, c]
        return out

    for which in ("global", "VLAD", "union"):
        name = f"{which} top-{DEPTH}, re-ranked by inliers"
        table[name] = scores_table(name, inliers(glob_pos, vlad_pos, pos_l, which), labels,
                                   inliers(glob_neg, vlad_neg, neg_l, which))
    if not args.no_product:
        table["artwatch"] = product_path(args, photos, queries, negatives, labels, ref_l)
    print(f"\n{time.perf_counter() - started:.0f}s", flush=True)


def product_path(args: argparse.Namespace, photos: list, queries: list, negatives: list,
                 labels: np.ndarray, ref_local: list) -> dict:
    """The matcher's engine as served today (global first stage, calibrated evidence, top
    candidates verified) with a bundle `artwatch train` makes of this catalogue."""
    import tempfile

    from artwatch.images.decode import perceptual_hash_pair
    from matcher.bundle import Bundle
    from matcher.engine import reference_set, score_photos
    from training.catalogue import load_manifest
    from training.deploy import DeployRequest, train_deploy

    out = Path(tempfile.mkdtemp(prefix="flat-bundle-")) / "bundle"
    print("\ntraining a bundle on the flat catalogue (`artwatch train` defaults)", flush=True)
    train_deploy(load_manifest(args.workdir / f"flat-{args.seed}-{args.objects}"),
                 DeployRequest(out=out, name="flat-objects", progress=False, plots=False,
                               vlad_words=args.vlad_words,
                               verified_model=args.verified_model,
                               local_candidates=args.local_candidates),
                 log=lambda m: None)
    bundle = Bundle.load(out)
    refs = reference_set(bundle, bundle.embed(photos), np.arange(len(photos)),
                         [perceptual_hash_pair(p)[0] for p in photos], local=ref_local)

    def scored(images: list) -> np.ndarray:
        matrix = np.full((len(images), len(photos)), -1.0)
        result = score_photos(bundle, refs, bundle.embed(images),
                              [perceptual_hash_pair(im) for im in images],
                              query_picture=lambda qi: images[qi],
                              reference_local=lambda row: ref_local[row])
        for qi in range(len(images)):
            for obj, p, _ in result.ranked(qi):
                matrix[qi, obj] = p
        return matrix

    stage = "global + local first stage" if args.vlad_words else "global first stage only"
    return scores_table(f"artwatch ({stage})", scored(queries), labels, scored(negatives))


if __name__ == "__main__":
    main()
