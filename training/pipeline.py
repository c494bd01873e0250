"""`artwatch train --recipe paper`: the paper's single split and finetuning, for its tables.

catalogue -> split -> finetune -> evaluate -> calibrate -> bundle. Each step is its own module;
this one only wires them together and decides what goes into `bundle.json` and `report/`. The
test split is used for evaluation and for the open-set operating points of the calibrated
classifier probability (with cross-fitted figures); model selection and temperature use
validation only. The deployment recipe (`training.deploy`, the default) is what the matcher
serves; a paper-recipe bundle reproduces the paper's tables (`artwatch evaluate`).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from matcher.bundle import ensure_new, save_bundle
from matcher.model import backbone_config, build_model
from matcher.preprocess import Preprocess
from training.calibration import fit_temperature, nll, reliability, softmax
from training.catalogue import Catalogue, Photo
from training.data import PixelCache, get_augment
from training.metrics import SUMMARY_METRICS, classification_report, knn_scores
from training.openset import build_scored, operating_points
from training.report import (
    plot_curves,
    plot_ppo,
    plot_reliability,
    plot_saliency,
    plot_tsne,
    write_markdown,
    write_metrics,
)
from training.splits import Split, make_split
from training.trainer import FitResult, TrainConfig, fit, infer


@dataclass
class TrainRequest:
    """Everything `artwatch train` was asked to do."""

    out: Path
    name: str
    architecture: str = "tf_efficientnet_lite0"
    resolution: int | None = None
    pretrained: str = "auto"
    min_photos: int = 3
    holdout_fraction: float = 0.1
    dup_distance: int = 4
    augment: str = "none"
    train: TrainConfig = field(default_factory=TrainConfig)
    precisions: Sequence[float] = (0.90, 0.95, 0.99)
    budgets: Sequence[float] = (5.0,)
    folds: int = 5
    plots: bool = True


@dataclass
class TrainOutcome:
    path: Path
    info: dict
    metrics: dict
    split: Split
    fit: FitResult


@dataclass
class Evaluated:
    """Model outputs per split, kept for the benchmark and the report."""

    logits: dict[str, np.ndarray]
    embeddings: dict[str, np.ndarray]
    photos: dict[str, list[Photo]]
    labels: dict[str, np.ndarray]


def _labels(photos: Sequence[Photo], index: dict[str, int]) -> np.ndarray:
    return np.array([index.get(p.object_id, -1) for p in photos], dtype=np.int64)


def evaluate_outputs(
    ev: Evaluated,
    objects: list[str],
    temperature: float,
    photos_per_object: dict[str, int],
    *,
    precisions: Sequence[float],
    budgets: Sequence[float],
    folds: int,
    seed: int,
) -> dict:
    """Test-split metrics for the classifier and kNN, calibration, and operating points."""
    n = len(objects)
    test = ev.photos["test"]
    y = ev.labels["test"]
    collections = [p.collection for p in test]
    ppo = [photos_per_object[p.object_id] for p in test]
    probs = softmax(ev.logits["test"], temperature)
    out: dict = {}
    out["classifier"] = classification_report(
        probs, y, objects, collections=collections, photos_per_object=ppo
    )
    knn = knn_scores(ev.embeddings["test"], ev.embeddings["train"], ev.labels["train"], n)
    out["knn"] = classification_report(
        knn, y, objects, collections=collections, photos_per_object=ppo
    )
    out["knn"]["references"] = "training photos"
    val_logits, val_y = ev.logits["val"], ev.labels["val"]
    ece_b, table_b = reliability(softmax(val_logits, 1.0), val_y)
    ece_a, table_a = reliability(softmax(val_logits, temperature), val_y)
    out["calibration"] = {
        "temperature": temperature,
        "split": "validation",
        "nll_before": nll(val_logits, val_y, 1.0),
        "nll_after": nll(val_logits, val_y, temperature),
        "ece_before": ece_b,
        "ece_after": ece_a,
        "bins_before": table_b,
        "bins_after": table_a,
        "test_nll_before": nll(ev.logits["test"], y, 1.0),
        "test_nll_after": nll(ev.logits["test"], y, temperature),
    }
    hold = ev.photos.get("holdout", [])
    hold_probs = (
        softmax(ev.logits["holdout"], temperature) if len(hold) else np.zeros((0, n), np.float32)
    )
    # The paper's open-set decision: the calibrated top-1 probability against thresholds set on
    # the test split, held-out objects as negatives.
    scored = build_scored(probs, y, [p.object_id for p in test], hold_probs,
                          [p.object_id for p in hold])
    out["operating_points"] = operating_points(
        scored, precisions=precisions, budgets=budgets, folds=folds, seed=seed
    )
    out["open_set"] = {
        "score": "calibrated classifier probability",
        "positives": int(len(y)),
        "negatives": len(hold),
        "negative_objects": len({p.object_id for p in hold}),
    }
    return out


def thresholds_from(points: list[dict]) -> dict:
    """Thresholds on the calibrated top-1 probability, keyed by operating point."""
    out: dict = {"score": "calibrated classifier probability", "default": "precision_0.95"}
    for p in points:
        key = (
            f"precision_{p['value']:.2f}"
            if p["target"] == "precision"
            else f"alerts_per_1000_{p['value']:g}"
        )
        out[key] = p["threshold"]
    if out["default"] not in out:  # the matcher's default operating point
        out["default"] = next((k for k in out if k.startswith(("precision_", "alerts_"))), None)
    return out


def train_bundle(
    catalogue: Catalogue, req: TrainRequest, log: Callable[[str], None] = print
) -> TrainOutcome:
    """Train, evaluate and write a bundle directory at `req.out`."""
    out = Path(req.out)
    ensure_new(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    split = make_split(
        catalogue.photos,
        seed=req.train.seed,
        min_photos=req.min_photos,
        dup_distance=req.dup_distance,
        holdout_fraction=req.holdout_fraction,
    )
    split.save(out / "splits.json")
    counts = split.counts()
    log(
        f"split: {len(split.objects)} objects, {len(split.holdout_objects)} held out, "
        f"{len(split.excluded)} excluded; photos {counts}"
    )
    objects = split.objects
    index = {o: i for i, o in enumerate(objects)}
    photos = {
        name: catalogue.subset(split.keys(name)) for name in ("train", "val", "test", "holdout")
    }
    labels = {name: _labels(ps, index) for name, ps in photos.items()}
    model, pretrained_used = build_model(req.architecture, len(objects), pretrained=req.pretrained)
    log(f"backbone {req.architecture}, pretrained: {pretrained_used}")
    cfg = backbone_config(req.architecture)
    resolution = req.resolution or cfg.resolution
    preprocess = Preprocess(resolution, cfg.mean, cfg.std)
    cache = PixelCache(preprocess)
    torch.manual_seed(req.train.seed)
    result = fit(
        model,
        photos["train"],
        labels["train"].tolist(),
        photos["val"],
        labels["val"].tolist(),
        req.train,
        cache,
        checkpoint_dir=out / "checkpoint",
        augment=get_augment(req.augment, resolution),
        log=log,
    )
    device = torch.device(req.train.device)
    logits, embeds = {}, {}
    for name, ps in photos.items():
        logits[name], embeds[name] = infer(
            model, ps, cache, device=device, batch_size=req.train.batch_size * 2
        )
    ev = Evaluated(logits, embeds, photos, labels)
    temperature = fit_temperature(logits["val"], labels["val"])
    kept = Counter(
        p.object_id
        for p in catalogue.photos
        if split.assignment.get(p.key) in ("train", "val", "test")
    )
    metrics = evaluate_outputs(
        ev,
        objects,
        temperature,
        dict(kept),
        precisions=req.precisions,
        budgets=req.budgets,
        folds=req.folds,
        seed=req.train.seed,
    )
    metrics["training"] = {
        "history": result.history,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "seconds": result.seconds,
        "stopped_early": result.stopped_early,
    }
    metrics["excluded_objects"] = split.excluded
    metrics["skipped_photos"] = catalogue.skipped
    log(
        f"test: classifier top-1 {metrics['classifier']['top1']:.3f} top-5 "
        f"{metrics['classifier']['top5']:.3f}; kNN top-1 {metrics['knn']['top1']:.3f}; "
        f"T={temperature:.3f}"
    )
    collections = {p.object_id: p.collection for p in catalogue.photos}
    info = {
        "name": req.name,
        "architecture": req.architecture,
        "resolution": resolution,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "objects": objects,
        "collections": [collections[o] for o in objects],
        "embedding_dim": model.embedding_dim,
        "temperature": temperature,
        "recipe": "paper",
        "head": "paper",
        "thresholds": thresholds_from(metrics["operating_points"]),
        "metrics": {
            k: {m: metrics[k][m] for m in SUMMARY_METRICS}
            for k in ("classifier", "knn")
        },
        "calibration": {
            k: v for k, v in metrics["calibration"].items() if not k.startswith("bins")
        },
        "operating_points": metrics["operating_points"],
        "manifest_hash": catalogue.manifest_hash(),
        "catalogue": catalogue.origin,
        "pretrained_source": pretrained_used,
        "augment": req.augment,
        "train_config": asdict(req.train),
        "split": {
            "file": "splits.json",
            "seed": split.seed,
            "min_photos": split.min_photos,
            "holdout_fraction": split.holdout_fraction,
            "dup_distance": split.dup_distance,
        },
        "split_counts": counts,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    model = model.cpu().eval()
    save_bundle(out, model, info)
    report = out / "report"
    report.mkdir(exist_ok=True)
    write_metrics(metrics, report / "metrics.json")
    write_markdown(info, metrics, report / "report.md")
    if req.plots:
        _plots(report, metrics, ev, objects, model, preprocess, result)
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    log(f"bundle written to {out} in {time.perf_counter() - started:.0f}s")
    return TrainOutcome(out, info, metrics, split, result)


def _plots(
    report: Path,
    metrics: dict,
    ev: Evaluated,
    objects: list[str],
    model,  # noqa: ANN001
    preprocess: Preprocess,
    result: FitResult,
) -> None:
    plot_curves(result.history, report / "training_curves.png")
    plot_ppo(metrics, report / "accuracy_by_photos.png")
    cal = metrics["calibration"]
    plot_reliability(cal["bins_before"], cal["bins_after"], report / "reliability.png")
    test = ev.photos["test"]
    plot_tsne(ev.embeddings["test"], [p.collection for p in test], report / "tsne.png")
    predicted = ev.logits["test"].argmax(1) if len(test) else np.zeros(0, int)
    y = ev.labels["test"]
    right = [i for i in range(len(test)) if predicted[i] == y[i]][:3]
    wrong = [i for i in range(len(test)) if predicted[i] != y[i]][:3]
    cases = [(test[i], objects[y[i]], objects[predicted[i]]) for i in right + wrong]
    plot_saliency(model, preprocess, cases, report / "saliency.png")
