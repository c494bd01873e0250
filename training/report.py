"""The bundle's `report/`: report.md, metrics.json and PNG plots.

Plots are drawn with matplotlib's Agg backend (no display needed): training curves, accuracy
by photos-per-object (paper Fig. 4), the reliability diagram before/after temperature scaling,
a t-SNE map of test embeddings coloured by collection, and gradient saliency maps for a few
correct and wrong test predictions.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from matcher.model import ArtefactClassifier  # noqa: E402
from matcher.pooling import pooling_sentence  # noqa: E402
from matcher.preprocess import Preprocess  # noqa: E402
from matcher.scoring import split_cell  # noqa: E402
from training.ablation import (  # noqa: E402
    ablation_lines,
    colour_choice_sentence,
    model_choice_sentence,
)
from training.catalogue import Photo  # noqa: E402
from training.metrics import PPO_BUCKETS, SUMMARY_METRICS  # noqa: E402


def plot_curves(history: list[dict], path: Path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [h["epoch"] for h in history]
    a.plot(epochs, [h["train_loss"] for h in history], label="train")
    a.plot(epochs, [h["val_loss"] for h in history], label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("NLL"), a.legend()
    b.plot(epochs, [h["train_accuracy"] for h in history], label="train")
    b.plot(epochs, [h["val_accuracy"] for h in history], label="validation")
    b.set_xlabel("epoch"), b.set_ylabel("top-1 accuracy"), b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_ppo(metrics: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.4
    for offset, key, label in (
        (-width / 2, "classifier", "classifier"),
        (width / 2, "knn", "kNN (finetuned)"),
    ):
        buckets = metrics.get(key, {}).get("per_photos_per_object", {})
        xs = [i + offset for i, b in enumerate(PPO_BUCKETS) if b in buckets]
        ys = [buckets[b]["accuracy"] for b in PPO_BUCKETS if b in buckets]
        ax.bar(xs, ys, width=width, label=label)
    ax.set_xticks(range(len(PPO_BUCKETS)), PPO_BUCKETS)
    ax.set_xlabel("photos per object"), ax.set_ylabel("top-1 accuracy"), ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(before: list[dict], after: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k:", label="perfect")
    for table, label in ((before, "T = 1"), (after, "temperature-scaled")):
        if table:
            ax.plot(
                [b["confidence"] for b in table], [b["accuracy"] for b in table], "o-", label=label
            )
    ax.set_xlabel("confidence (top-1 probability)"), ax.set_ylabel("accuracy")
    ax.set_title("reliability (validation)"), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_tsne(
    embeddings: np.ndarray, collections: Sequence[str], path: Path, seed: int = 0, limit: int = 600
) -> None:
    from sklearn.manifold import TSNE

    n = len(embeddings)
    if n < 5:
        return
    idx = np.random.default_rng(seed).permutation(n)[:limit]
    xy = TSNE(
        n_components=2, perplexity=min(30.0, (len(idx) - 1) / 3), random_state=seed, init="pca"
    ).fit_transform(embeddings[idx])
    fig, ax = plt.subplots(figsize=(6, 5))
    labels = [collections[i] for i in idx]
    for name in sorted(set(labels)):
        mask = np.array([c == name for c in labels])
        ax.scatter(xy[mask, 0], xy[mask, 1], s=8, label=name)
    ax.set_title("t-SNE of test embeddings"), ax.legend(fontsize=7, markerscale=2)
    ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def saliency(
    model: ArtefactClassifier, preprocess: Preprocess, photo: Photo, samples: int = 8
) -> tuple:
    """(padded input pixels, SmoothGrad map of the top logit) for one photo, on CPU.

    Plain input gradients are speckled; averaging |gradient| over a few noisy copies
    (SmoothGrad) shows which parts of the object the prediction rests on.
    """
    model = model.cpu().eval()
    pixels = preprocess.fit(photo.load())
    x = preprocess.normalise(torch.from_numpy(pixels))
    with torch.no_grad():
        target = int(model(x)[0].argmax())
    noisy = x + 0.15 * torch.randn(
        (samples, *x.shape[1:]), generator=torch.Generator().manual_seed(0)
    )
    noisy.requires_grad_(True)
    model(noisy)[:, target].sum().backward()
    grad = noisy.grad.abs().amax(dim=1).mean(dim=0).numpy()
    return pixels, grad / (grad.max() or 1.0)


def plot_saliency(
    model: ArtefactClassifier,
    preprocess: Preprocess,
    cases: list[tuple[Photo, str, str]],
    path: Path,
) -> None:
    """cases: (photo, true object, predicted object)."""
    if not cases:
        return
    fig, axes = plt.subplots(2, len(cases), figsize=(2.2 * len(cases), 4.6), squeeze=False)
    for col, (photo, true, pred) in enumerate(cases):
        pixels, grad = saliency(model, preprocess, photo)
        axes[0, col].imshow(pixels)
        axes[0, col].set_title(
            f"{'ok' if true == pred else 'WRONG'}\n{true}\n-> {pred}", fontsize=7
        )
        axes[1, col].imshow(pixels)
        axes[1, col].imshow(grad, cmap="inferno", alpha=0.6)
        for ax in axes[:, col]:
            ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_markdown(info: dict, metrics: dict, path: Path) -> None:
    """A human-readable summary of metrics.json."""
    lines = [f"# Bundle {info.get('name')}", ""]
    lines += [
        f"- architecture: {info['architecture']} at {info['resolution']} px",
        f"- pretrained: {info.get('pretrained_source')}",
        f"- objects: {len(info['objects'])}; split counts: {info.get('split_counts')}",
        f"- best epoch (validation): {metrics.get('training', {}).get('best_epoch')}",
        f"- manifest hash: {info.get('manifest_hash')}",
        "",
    ]
    lines += [
        "## Test split",
        "",
        "| scorer | top-1 | top-3 | top-5 | top-10 | "
        "precision (macro) | recall (macro) | F1 (macro) | F1 (weighted) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ("classifier", "knn"):
        m = metrics.get(key)
        if m:
            lines.append(f"| {key} | " + " | ".join(_fmt(m[k]) for k in SUMMARY_METRICS) + " |")
    lines += [
        "",
        "Precision/recall/F1: scikit-learn, average named, over objects in the test "
        "split; kNN uses training photos as references (best cosine per object).",
        "",
    ]
    clf = metrics.get("classifier", {})
    if clf.get("per_collection"):
        lines += [
            "## Per collection (paper Table 4)",
            "",
            "| collection | n | top-1 |",
            "|---|---|---|",
        ]
        lines += [
            f"| {c} | {v['n']} | {v['accuracy']:.3f} |" for c, v in clf["per_collection"].items()
        ]
        lines.append("")
    if clf.get("per_photos_per_object"):
        lines += [
            "## By photos per object (paper Fig. 4)",
            "",
            "| photos | n | top-1 | top-5 |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {b} | {v['n']} | {v['accuracy']:.3f} | {v['top5']:.3f} |"
            for b, v in clf["per_photos_per_object"].items()
        ]
        lines.append("")
    cal = metrics.get("calibration", {})
    if cal:
        lines += [
            "## Calibration (validation)",
            "",
            f"temperature {cal['temperature']:.3f}; NLL {cal['nll_before']:.4f} -> "
            f"{cal['nll_after']:.4f}; ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}",
            "",
        ]
    points = metrics.get("operating_points", [])
    if points:
        score = metrics.get("open_set", {}).get("score", "calibrated top-1 probability")
        lines += [
            "## Open-set operating points",
            "",
            f"Thresholds on the alert score ({score}), fitted on the test split with "
            "held-out objects as negatives; figures cross-fitted (fit on k-1 folds, "
            "measured on the k-th). Classifier-only rows: the calibrated top-1 probability "
            "under the same protocol, for comparison.",
            "",
            "| score | target | threshold | precision | recall | false alerts / 1000 |",
            "|---|---|---|---|---|---|",
        ]
        rows = [("alert score", p) for p in points]
        baseline = metrics.get("operating_points_classifier_only", [])
        rows += [("classifier only", p) for p in baseline]
        for name, p in rows:
            cf = p["cross_fitted"]
            lines.append(
                f"| {name} | {p['target']} {p['value']} | {p['threshold']:.4f} | "
                f"{cf['precision']:.3f} | {cf['recall']:.3f} | "
                f"{cf['false_alerts_per_1000']:.1f} |"
            )
        lines.append("")
    confused = clf.get("most_confused", [])
    if confused:
        lines += ["## Most confused objects", "", "| true | predicted | count |", "|---|---|---|"]
        lines += [f"| {c['true']} | {c['predicted']} | {c['count']} |" for c in confused]
        lines.append("")
    lines += [
        "## Plots",
        "",
        "![curves](training_curves.png) ![ppo](accuracy_by_photos.png)",
        "![reliability](reliability.png) ![tsne](tsne.png) ![saliency](saliency.png)",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_metrics(metrics: dict, path: Path) -> None:
    path.write_text(json.dumps(metrics, indent=1, default=float, allow_nan=True), encoding="utf-8")


# --- the deployment recipe ----------------------------------------------------------------------


def plot_deploy_ppo(retrieval: dict, path: Path) -> None:
    """Out-of-fold top-1 by photos per object: learned vs pretrained kNN, studio and listing."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for ax, kind in zip(axes, ("studio", "listing"), strict=True):
        rows = retrieval.get(kind, {}).get("by_photos_per_object", {})
        keys = [k for k in ("1", "2", "3", "4+") if k in rows]
        x = np.arange(len(keys))
        ax.bar(x - 0.2, [rows[k]["baseline_top1"] for k in keys], 0.4, label="pretrained kNN")
        ax.bar(x + 0.2, [rows[k]["first_candidate_top1"] for k in keys], 0.4,
               label="artwatch (first candidate)")
        ax.set_xticks(x, keys), ax.set_xlabel("catalogue photos per object")
        ax.set_title(f"{kind} photos"), ax.set_ylim(0, 1)
    axes[0].set_ylabel("top-1 (out of fold)"), axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_promises(points: dict, path: Path) -> None:
    """Promised false alerts per 1,000 negative listings (with interval) by pooled calibration
    cell (listing size, and look); the collections' own cells are in the report's table."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, p in points.items():
        keys = [b for b, v in p["promise"].items()
                if v["per_1000"] is not None and split_cell(b)[2] is None]
        mid = [p["promise"][b]["per_1000"] for b in keys]
        lo = [mid[i] - p["promise"][b]["interval"][0] for i, b in enumerate(keys)]
        hi = [p["promise"][b]["interval"][1] - mid[i] for i, b in enumerate(keys)]
        ax.errorbar(keys, mid, yerr=[lo, hi], marker="o", capsize=3, label=name)
    ax.set_xlabel("calibration cell: distinct photos / look"), ax.set_ylabel(
        "false alerts / 1,000")
    ax.tick_params(axis="x", labelsize=7, labelrotation=30)
    ax.set_yscale("symlog", linthresh=1.0), ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


CALIBRATION_LISTINGS = "calibration_listings.csv"


def write_calibration_listings(path: Path, rows: Sequence[dict]) -> None:
    """The simulated listings the thresholds were set on, one row each (listing, photos, cell,
    collection, shows, truth, best, score): a reviewer auditing a promise sees which objects'
    listings came near a cut, and an operating point can be derived again from them
    (`training.calibrate.operating_points`)."""
    fields = ["listing", "photos", "cell", "collection", "shows", "truth", "best", "score"]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_deploy_report(report: Path, info: dict, metrics: dict, *, plots: bool = True) -> None:
    """report.md, metrics.json and plots of a deployment-recipe bundle."""
    report.mkdir(parents=True, exist_ok=True)
    write_metrics(metrics, report / "metrics.json")
    retrieval = metrics["retrieval"]
    lines = [f"# Bundle {info['name']} (recipe: {info['recipe']})", ""]
    lines += [
        f"- backbone: {info['architecture']} at {info['resolution']} px, frozen; pretrained: "
        f"{info['pretrained_source']}; {pooling_sentence(info.get('pooling'))}; learned "
        f"whitening to {info['whitening_dim']} dims",
        f"- objects: {len(info['objects'])}; cross-fitting: "
        f"{metrics['cross_fitting']['folds']} worlds, "
        f"{metrics['cross_fitting']['positive_queries']} queries of catalogued objects, "
        f"{metrics['cross_fitting']['negative_queries']} of uncatalogued ones",
        "- time: " + ", ".join(f"{k} {v:.0f}s" for k, v in metrics["timings"].items()),
        "",
        "## Recognition out of fold, beside the zero-training baseline",
        "",
        "Queries are catalogue photos (studio), synthetic listing photos of them (listing; "
        "phone: the object small on a busy surface) and re-used copies (reuse), each scored "
        "by a model that never saw it. Baseline: the "
        "pretrained backbone with no training, pooled as served, cosine kNN over the same "
        "references (benchmarks/recognition.py also prints it with timm's average pooling).",
        "",
        "| queries | n | baseline top-1 | learned top-1 | first candidate | baseline top-5 | "
        "learned top-5 |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("studio", "listing", "phone", "reuse", "all"):
        if kind not in retrieval:  # bundles made before phone views
            continue
        r = retrieval[kind]
        lines.append(
            f"| {kind} | {r['queries']} | {_fmt(r['baseline_top1'])} | "
            f"{_fmt(r['learned_top1'])} | {_fmt(r['first_candidate_top1'])} | "
            f"{_fmt(r['baseline_top5'])} | {_fmt(r['learned_top5'])} |"
        )
    if retrieval.get("worse_than_pretrained"):
        lines += ["", f"**Warning: worse than the pretrained baseline on "
                      f"{', '.join(retrieval['worse_than_pretrained'])} photos.**"]
    if "evidence_ablation" in metrics:
        lines += ["", "## What each kind of evidence buys (out of fold)", "",
                  "The photo score cross-fitted again without one kind of evidence, on the same "
                  "queries; c&a: correct and accepted at 1% false alerts (threshold: the 99th "
                  "percentile of photos of uncatalogued objects and ordinary listings).", ""]
        lines += ablation_lines(metrics["evidence_ablation"])
        for sentence in (model_choice_sentence(metrics.get("verified_model", {})),
                         colour_choice_sentence(metrics.get("colour_gap", {}))):
            if sentence:
                lines += ["", sentence]
    lines += ["", "## Operating points (listing level)", "",
              "Thresholds per calibration cell (listing size, and the look of the listing's "
              "decisive photo: catalogue or marketplace; with several collections also per "
              "collection of the best candidate, `cell@collection`, never below the pooled "
              "cell's cut) set on simulated listings of "
              "out-of-fold photos; promised false alerts per 1,000 negative listings, 95% "
              "interval of the rate, counted over the objects the negative listings show "
              "(`training.calibrate.object_weights`).",
              "", "| point | cell | threshold | promised / 1000 | interval | negatives "
              "(objects) |", "|---|---|---|---|---|---|"]
    for name, p in metrics["operating_points"].items():
        for b, cut in p["buckets"].items():
            pr = p["promise"][b]
            lines.append(
                f"| {name} | {b} | {cut:.4f} | {_fmt(pr['per_1000'])} | "
                f"{_fmt(pr['interval'][0])}-{_fmt(pr['interval'][1])} | {pr['negatives']} "
                f"({pr.get('objects', pr['negatives'])}) |"
            )
        c = p["calibration"]
        lines.append(f"| {name} | all | | precision {_fmt(c['precision'])} (with the "
                     f"promised false alerts {_fmt(c.get('expected_precision'))}), recall "
                     f"{_fmt(c['recall'])}"
                     + ("; **target not reached: the strictest cuts**"
                        if p.get("reached") is False else "")
                     + f" | | {c['negatives']} |")
    lines += ["", "![by photos per object](accuracy_by_photos.png) ![promises](promises.png)",
              ""]
    (report / "report.md").write_text("\n".join(lines), encoding="utf-8")
    if plots:
        plot_deploy_ppo(retrieval, report / "accuracy_by_photos.png")
        plot_promises(metrics["operating_points"], report / "promises.png")
