"""`artwatch train` (default recipe): the catalogue -> a calibrated, deployable bundle.

Steps (each its own module):

1. `training.views`: every catalogue photo, `views` synthetic listing photos of it and one
   re-used copy, through the pretrained backbone (frozen: its ImageNet features are kept whole;
   the trade is measured in docs/recognition.md), plus ordinary-listing distractors;
2. `training.crossfit`: K worlds, each with its own learned whitening (`training.whitening`),
   so every photo is scored out-of-fold, every object is "uncatalogued" once, and every query
   is also ranked by the zero-training baseline (pretrained kNN) for comparison;
3. `training.calibrate`: the calibrated photo and listing scores, thresholds per operating
   point and listing size with their promised false-alert rates;
4. the served model: the whitening refitted on every photo and view; the bundle carries the
   cross-fitted score and thresholds (the refit sees a little more data than any fold model:
   the thresholds are, if anything, conservative; docs/recognition.md).

Objects of every size are classes of the catalogue: one photo is enough (its synthetic views
teach the whitening what varies), and an object added after training is recognised as soon as
`artwatch index` has embedded its photos.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import save_file

from matcher.bundle import (
    BANK_FILE,
    ensure_new,
    local_stage_info,
    save_bundle,
    save_codebook,
)
from matcher.crop import crop_info
from matcher.evidence import (
    BACKGROUND_K,
    CANDIDATES,
    LOCAL_CANDIDATES,
    PHASH_NEAR,
    VERIFIED,
    check_local_candidates,
)
from matcher.model import backbone_config, build_model
from matcher.pooling import pooling_spec
from matcher.precision import inference_precision
from matcher.preprocess import Preprocess
from matcher.scoring import (
    DUPLICATE_PHASH,
    DUPLICATE_SIMILARITY,
    VERIFY_FLOOR,
    fit_look,
    split_cell,
)
from matcher.verify import matching_info
from matcher.vlad import WORDS, fit_codebook
from training.ablation import (
    colour_choice_sentence,
    evidence_ablation,
    model_choice_sentence,
    photo_scores_chosen,
)
from training.calibrate import (
    fit_listing_model,
    listing_rows,
    listing_scores,
    operating_points,
    simulate_listings,
    with_cells,
    with_collections,
)
from training.catalogue import Catalogue, Photo
from training.crossfit import TEMPERATURE, Distractors, QuerySet, plan_worlds, world_evidence
from training.views import (
    LISTING,
    PHONE,
    REUSE,
    REUSE_EXAMPLES,
    STUDIO,
    TWIN,
    VARIANT,
    QueryImage,
    ViewSet,
    backbone_images,
    pooled_features,
    query_features,
    render_views,
    reuse_examples,
)
from training.whitening import default_dim, default_shrink, fit_whitening

RECIPE = "deploy"


@dataclass
class DeployRequest:
    """What `artwatch train` was asked to do (the defaults are the recipe)."""

    out: Path
    name: str
    architecture: str = "tf_efficientnet_lite0"
    resolution: int | None = None
    pretrained: str = "auto"
    pooling: str = "gem"  # `matcher.pooling`: gem (p = 2) | avg
    verified_model: str = "auto"  # `training.ablation.photo_scores_chosen`: auto | logistic | trees
    views: int = 4  # synthetic listing photos per catalogue photo (at most; see image_budget)
    query_views: int = 2  # of which out-of-fold listing-style queries
    image_budget: int = 20_000  # images through the backbone for the views step, at most
    reuse_examples: int = REUSE_EXAMPLES  # photos with a re-used copy, a hash twin and a
    # colour variant, at most
    folds: int = 4
    shrink: float | None = None  # within-object shrinkage; None: `whitening.default_shrink`
    dim_cap: int = 256  # largest embedding (`training.whitening.default_dim`: 128 to 256)
    distractors: int = 240  # generated ordinary-listing photos (half bank, half negatives)
    local_features: bool = True
    query_crop: bool = True  # queries embedded from their object crop (`matcher.crop`)
    vlad_words: int = WORDS  # the local first stage's codebook (`matcher.vlad`); 0: none
    local_candidates: int = LOCAL_CANDIDATES  # objects it nominates per photo, always verified
    precisions: Sequence[float] = (0.90, 0.95, 0.99)
    budgets: Sequence[float] = (5.0,)
    seed: int = 0
    device: str = "cpu"
    workers: int = 2
    plots: bool = True
    progress: bool = True
    distractor_images: Sequence | None = field(default=None, repr=False)


@dataclass
class DeployOutcome:
    path: Path
    info: dict
    metrics: dict
    queries: QuerySet


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), disable=not enabled, transient=True)


def _distractor(args: tuple[int, int]) -> object:
    from artwatch.demo import distractor_listing_photos

    index, seed = args
    return distractor_listing_photos(1, seed=seed, start=index)[0][1]


def generated_distractors(count: int, seed: int, workers: int = 2) -> list:
    """Ordinary-listing photos of generated objects in no catalogue (a new install's bank),
    rendered in `workers` processes."""
    from concurrent.futures import ProcessPoolExecutor

    from artwatch.demo.catalogue import pool_context, worker_init

    tasks = [(i, seed + 7919) for i in range(count)]
    if workers <= 1:
        return [_distractor(t) for t in tasks]
    with ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=worker_init) as pool:
        return list(pool.map(_distractor, tasks, chunksize=4))


def distractor_set(images: Sequence, backbone: torch.nn.Module, preprocess: Preprocess,
                   device: torch.device, local: bool, crop: bool = True) -> Distractors:
    """Half of the photos as the background bank, the other half as negative queries (`crop`:
    embedded as the matcher embeds a query, from the object crop where it cuts one)."""
    from artwatch.images.decode import perceptual_hash_pair
    from matcher.verify import extract_query

    bank_images = [images[i] for i in range(0, len(images), 2)]
    query_images = [images[i] for i in range(1, len(images), 2)]
    queries = []
    for image in query_images:
        h, m = perceptual_hash_pair(image)
        queries.append(QueryImage("distractor", h, m, extract_query(image) if local else None))
    if crop:  # one first pass gives the whole photos' features and the crops' boxes
        served, whole, _ = query_features(query_images, backbone, preprocess, device)
    else:
        served = whole = pooled_features(query_images, backbone, preprocess, device)
    return Distractors(bank=pooled_features(bank_images, backbone, preprocess, device),
                       queries=served, query_images=queries, whole=whole)


def crop_sentence(views: ViewSet) -> str:
    """Which query images were embedded from an object crop, by kind (for the log)."""
    parts = []
    for kind in (STUDIO, LISTING, PHONE, REUSE, TWIN, VARIANT):
        hits = [bool(views.cropped[i, k]) for i, images in enumerate(views.queries)
                for k, image in enumerate(images) if image.kind == kind]
        if hits:
            parts.append(f"{kind} {sum(hits)}/{len(hits)}")
    return ", ".join(parts) + " query images cropped"


def _ppo_bin(n: int) -> str:
    return "1" if n == 1 else "2" if n == 2 else "3" if n == 3 else "4+"


def retrieval_summary(qs: QuerySet, probs: np.ndarray, photos_per_object: dict[int, int]
                      ) -> dict:
    """Out-of-fold top-k of catalogued-object queries: learned embedding, calibrated
    first candidate and the pretrained kNN baseline, by query kind and photos per object."""
    out: dict = {}
    pos = qs.positive
    first = np.take_along_axis(qs.candidates.objects, np.argmax(probs, 1)[:, None], 1)[:, 0]
    kinds = ("studio", "listing", "phone", "reuse")
    for kind in (*kinds, "all"):
        sel = pos & ((qs.kind == kind) if kind != "all" else np.isin(qs.kind, kinds))
        row: dict = {"queries": int(sel.sum())}
        for name, ranked in (("learned", qs.ranked), ("baseline", qs.baseline)):
            for k in (1, 5, 10):
                hit = (ranked[sel, :k] == qs.label[sel, None]).any(1)
                row[f"{name}_top{k}"] = float(hit.mean()) if sel.any() else float("nan")
        row["first_candidate_top1"] = float((first[sel] == qs.label[sel]).mean()) \
            if sel.any() else float("nan")
        by_ppo: dict = {}
        for b in ("1", "2", "3", "4+"):
            s = sel & np.array([_ppo_bin(photos_per_object.get(int(lbl), 0)) == b
                                for lbl in qs.label])
            if s.any():
                by_ppo[b] = {
                    "queries": int(s.sum()),
                    "learned_top1": float((qs.ranked[s, 0] == qs.label[s]).mean()),
                    "baseline_top1": float((qs.baseline[s, 0] == qs.label[s]).mean()),
                    "first_candidate_top1": float((first[s] == qs.label[s]).mean()),
                }
        row["by_photos_per_object"] = by_ppo
        out[kind] = row
    worse = [k for k in ("studio", "listing") if out[k]["queries"]
             and out[k]["learned_top1"] < out[k]["baseline_top1"]]
    out["worse_than_pretrained"] = worse
    return out


def views_per_photo(photos: int, views: int, image_budget: int) -> int:
    """Listing views per catalogue photo: `views`, fewer when the catalogue is large.

    Every photo goes through the backbone `views + 3` times (original, views, re-used copy,
    hash twin; `views + 1` for a photo beyond `reuse_examples`), its cropped query images
    once more; at ~16 images/s on 2 CPU cores in float32
    (~21 in bfloat16, `matcher.precision`) the view step is most of training. Above
    `image_budget` images the views are cut, never below 2 (the whitening's within-object
    spread and one out-of-fold listing query need them). Measured on a 3,740-photo catalogue
    (`benchmarks/training_time.py`): 4 views, 26,180 images, 27.0 of 30.9 minutes.
    """
    if photos <= 0:
        return views
    return max(min(views, 2), min(views, image_budget // photos - 3))


def query_views_for(views: int, asked: int) -> int:
    """Views per photo that are out-of-fold listing queries: `asked`, but at least one view is
    left to train the worlds' whitening (`training.crossfit.whitening_views`)."""
    return min(asked, max(1, views - 1))


def train_deploy(catalogue: Catalogue, req: DeployRequest,
                 log: Callable[[str], None] = print) -> DeployOutcome:
    """Run the recipe and write the bundle directory `req.out`."""
    out = Path(req.out)
    ensure_new(out)
    started = time.perf_counter()
    photos: list[Photo] = list(catalogue.photos)
    objects = sorted({p.object_id for p in photos})
    if len(objects) < 2:
        raise ValueError(f"the catalogue has {len(objects)} object(s); need at least 2")
    check_local_candidates(req.local_candidates)  # what a bundle may record (`Bundle`)
    device = torch.device(req.device)
    pooling = pooling_spec(req.pooling)
    model, pretrained_used = build_model(req.architecture, 0, pretrained=req.pretrained,
                                         pooling=pooling)
    log(f"backbone {req.architecture} (frozen), pretrained: {pretrained_used}, pooling "
        f"{req.pooling}, inference in {inference_precision(device)}")
    cfg = backbone_config(req.architecture)
    resolution = req.resolution or cfg.resolution
    preprocess = Preprocess(resolution, cfg.mean, cfg.std)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    done = [0, 0]  # photos through the backbone, the last tenth logged

    def advance(n: int) -> None:
        done[0] += n
        tenth = 10 * done[0] // max(1, len(photos))
        if tenth > done[1]:  # a line every 10% as well: the bar is not seen in a pipe
            done[1] = tenth
            log(f"  photos {done[0]}/{len(photos)} ({time.perf_counter() - t0:.0f}s)")
        progress.advance(task, n)

    n_views = views_per_photo(len(photos), req.views, req.image_budget)
    query_views = query_views_for(n_views, req.query_views)
    if n_views < req.views:
        log(f"{len(photos)} photos: {n_views} listing views per photo, not {req.views} "
            f"(at most {req.image_budget:,} images through the backbone)")
    counts = Counter(p.object_id for p in photos)
    examples = reuse_examples([p.key for p in photos], req.seed, req.reuse_examples,
                              first=np.array([counts[p.object_id] > 1 for p in photos]))
    if not examples.all():
        log(f"{len(photos)} photos: a re-used copy, a hash twin and a colour variant for "
            f"{int(examples.sum()):,} of them (at most {req.reuse_examples:,})")
    with _progress(req.progress) as progress:
        task = progress.add_task(
            f"photos: original + {n_views} listing views + re-used copy + hash twin + "
            "colour variant",
            total=len(photos))
        views = render_views(
            photos, model.backbone, preprocess, n_views=n_views, query_views=query_views,
            seed=req.seed, device=device, local=req.local_features, crop=req.query_crop,
            examples=examples, workers=req.workers, progress=advance,
        )
    timings["views_s"] = time.perf_counter() - t0
    passed = backbone_images(n_views, examples)
    log(f"{len(photos)} photos of {len(objects)} objects: {passed} images through the backbone "
        f"in {timings['views_s']:.0f}s; {int(views.coloured.sum()):,} of "
        f"{int(examples.sum()):,} colour variants differ in colour (negative queries)")
    if req.query_crop:
        log(f"object crops (matcher.crop): {crop_sentence(views)}")

    t0 = time.perf_counter()
    images = (list(req.distractor_images) if req.distractor_images is not None
              else generated_distractors(req.distractors, req.seed, req.workers))
    distractors = distractor_set(images, model.backbone, preprocess, device, req.local_features,
                                 req.query_crop)
    timings["distractors_s"] = time.perf_counter() - t0
    log(f"{len(images)} distractor photos ({timings['distractors_s']:.0f}s)")

    t0 = time.perf_counter()
    plan = plan_worlds(photos, req.folds, req.seed)
    qs = world_evidence(photos, views, distractors, plan, query_views=query_views,
                        shrink=req.shrink, dim_cap=req.dim_cap, local=req.local_features,
                        vlad_words=req.vlad_words, local_candidates=req.local_candidates,
                        workers=req.workers, log=log)
    timings["cross_fit_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    choice, model_choice = photo_scores_chosen(qs, local=req.local_features,
                                               model=req.verified_model)
    scores, colour = choice.scores, choice.summary
    for sentence in (model_choice_sentence(model_choice), colour_choice_sentence(colour)):
        if sentence:
            log(sentence)
    fit_set = simulate_listings(qs, seed=req.seed + 1)
    listing_model = fit_listing_model(qs, scores.probabilities, fit_set)
    calib_set = simulate_listings(qs, seed=req.seed + 2)
    best, which, decisive = listing_scores(qs, scores.probabilities, calib_set, listing_model)
    calib_set = with_cells(qs, calib_set, decisive)
    collections = {p.object_id: p.collection for p in photos}
    calib_set = with_collections(calib_set, which, [collections[o] for o in qs.objects])
    points = operating_points(best, which, calib_set, precisions=req.precisions,
                              budgets=req.budgets)
    timings["calibration_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ablation = evidence_ablation(qs, local=req.local_features, fitted=choice.fitted,
                                 verified_model=model_choice["served"])
    timings["ablation_s"] = time.perf_counter() - t0

    # The served model: whitening on every photo and all its views but the phone views.
    obj_index = {o: i for i, o in enumerate(objects)}
    groups = np.array([obj_index[p.object_id] for p in photos])
    rows = [views.whitening_rows(j) for j in range(n_views)]
    fit_x = np.concatenate([views.originals] + [views.views[r, j] for j, r in enumerate(rows)])
    fit_g = np.concatenate([groups] + [groups[r] for r in rows])
    final = fit_whitening(fit_x, fit_g,
                          dim=default_dim(len(objects), views.originals.shape[1], req.dim_cap),
                          shrink=(default_shrink(len(objects)) if req.shrink is None
                                  else req.shrink))
    whitened = build_model(req.architecture, 0, pretrained="none", whitening_dim=final.dim,
                           pooling=pooling)[0]
    whitened.backbone.load_state_dict(model.backbone.state_dict())
    assert whitened.whitening is not None
    whitened.whitening.mean.copy_(torch.from_numpy(final.mean).float())
    whitened.whitening.projection.copy_(torch.from_numpy(final.projection).float())
    bank = final.apply(distractors.bank)
    look = (fit_look(final.apply(views.originals), np.concatenate(
        [final.apply(views.views[:, j]) for j in range(n_views)] + [bank]))
        if qs.look is not None else None)

    codebook = (fit_codebook(views.reference_local, req.vlad_words, seed=req.seed)
                if req.local_features and req.vlad_words else None)

    ppo = {obj_index[o]: n for o, n in _counts(photos).items()}
    summary = retrieval_summary(qs, scores.probabilities, ppo)
    metrics = {
        "recipe": RECIPE,
        "retrieval": summary,
        "evidence_ablation": ablation,
        "colour_gap": colour,
        "verified_model": model_choice,
        "operating_points": points,
        "photo_score": scores.spec,
        "listing_score": listing_model,
        "cross_fitting": {
            "folds": req.folds, "views": n_views,
            "reuse_examples": int(examples.sum()), "queries": int(len(qs.label)),
            "positive_queries": int(qs.positive.sum()),
            "negative_queries": int((~qs.positive).sum()),
            "listings": {"fit": len(fit_set), "calibration": len(calib_set)},
        },
        "timings": {**timings, "total_s": time.perf_counter() - started},
        "skipped_photos": catalogue.skipped,
    }
    for kind in ("studio", "listing"):
        r = summary[kind]
        log(f"out-of-fold {kind} photos ({r['queries']}): top-1 {r['learned_top1']:.3f} "
            f"(first candidate {r['first_candidate_top1']:.3f}) vs pretrained kNN "
            f"{r['baseline_top1']:.3f}")
    for name, kinds in ablation.items():
        log(f"{name}: " + ", ".join(
            f"{kind} top-1 {row['top1']:.3f} c&a@1%FA {row['correct_accepted']:.3f}"
            for kind, row in kinds.items() if "correct_accepted" in row))
    if summary["worse_than_pretrained"]:
        log(f"[yellow]warning:[/yellow] worse than the pretrained backbone's kNN on "
            f"{', '.join(summary['worse_than_pretrained'])} photos (see report)")
    for name, p in points.items():
        promised = {b: round(v["per_1000"], 1) for b, v in p["promise"].items()
                    if v["per_1000"] is not None and split_cell(b)[2] is None}
        own = len({split_cell(b)[2] for b in p["promise"]} - {None})
        log(f"{name}: calibration precision {p['calibration']['precision']:.3f} (with the "
            f"promised false alerts {p['calibration']['expected_precision']:.3f}) recall "
            f"{p['calibration']['recall']:.3f}; promised false alerts per 1,000 listings "
            f"by size {promised}" + (f" (and per collection, {own} collections: report)"
                                     if own else "")
            + ("; [yellow]target not reached[/yellow]: the strictest cuts"
               if p.get("reached") is False else ""))

    score_spec = {
        "kind": "calibrated-evidence",
        "temperature": TEMPERATURE,
        "candidates": CANDIDATES,
        "verified_candidates": VERIFIED,
        "phash_near": PHASH_NEAR,
        "background_k": BACKGROUND_K,
        "duplicate_similarity": DUPLICATE_SIMILARITY,
        "duplicate_phash": DUPLICATE_PHASH,
        "verify_floor": scores.spec.get("verify_floor", VERIFY_FLOOR),
        "global": scores.spec["global"],
        "listing": listing_model,
        **({"verified": scores.spec["verified"]} if "verified" in scores.spec else {}),
        **({"look": look} if look is not None else {}),
    }
    info = {
        "name": req.name,
        "recipe": RECIPE,
        "head": "none",
        "architecture": req.architecture,
        "pooling": pooling,
        "resolution": resolution,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "objects": objects,
        "collections": [collections[o] for o in objects],
        "embedding_dim": final.dim,
        "whitening_dim": final.dim,
        "temperature": TEMPERATURE,
        "score": score_spec,
        "thresholds": {"operating_points": points, "default": "precision_0.95"},
        "metrics": {
            "learned": {f"top{k}": summary["all"][f"learned_top{k}"] for k in (1, 5, 10)},
            "knn": {f"top{k}": summary["all"][f"baseline_top{k}"] for k in (1, 5, 10)},
            "by_kind": {k: {m: summary[k][m] for m in ("learned_top1", "baseline_top1",
                                                         "first_candidate_top1")}
                        for k in ("studio", "listing", "reuse")},
        },
        "manifest_hash": catalogue.manifest_hash(),
        "catalogue": catalogue.origin,
        "pretrained_source": pretrained_used,
        "inference_precision": inference_precision(device),
        "train_config": {k: v for k, v in asdict(req).items()
                         if k not in ("out", "distractor_images")},
        **({"local_first_stage": local_stage_info(codebook, req.local_candidates)}
           if codebook is not None else {}),
        **({"local_matching": matching_info()} if req.local_features else {}),
        **({"query_crop": crop_info()}
           if req.query_crop else {}),
        "distractor_bank": {"file": BANK_FILE, "photos": int(len(distractors.bank)),
                            "source": "given" if req.distractor_images is not None
                            else "generated"},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_bundle(out, whitened.cpu().eval(), info)
    save_file({"bank": torch.from_numpy(bank).contiguous()}, str(out / BANK_FILE))
    if codebook is not None:
        save_codebook(out, codebook)
    from training.report import (
        CALIBRATION_LISTINGS,
        write_calibration_listings,
        write_deploy_report,
    )

    write_deploy_report(out / "report", info, metrics, plots=req.plots)
    write_calibration_listings(out / "report" / CALIBRATION_LISTINGS,
                               listing_rows(calib_set, best, which, qs.objects))
    log(f"bundle written to {out} in {time.perf_counter() - started:.0f}s")
    return DeployOutcome(out, info, metrics, qs)


def _counts(photos: Sequence[Photo]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in photos:
        counts[p.object_id] = counts.get(p.object_id, 0) + 1
    return counts
