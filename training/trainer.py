"""Finetuning loop: Adam (paper lr 10^-4.8), weighted NLL, best-on-validation, resumable.

The paper tested last-epoch weights and picked "best" models on the test split; here the
checkpoint kept is the best on validation (accuracy, then loss), training stops early when
validation stops improving, and the test split is never looked at. Every epoch writes a
resumable checkpoint as safetensors + JSON (no pickles), and the data order and dropout are
seeded per epoch, so a resumed run continues exactly where the stopped one was.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file
from torch import nn

from matcher.model import ArtefactClassifier
from matcher.precision import served_forward
from training.catalogue import Photo
from training.data import Augment, PixelCache, iterate_batches
from training.paper import PAPER_LR


@dataclass
class TrainConfig:
    """Knobs of one finetuning run (recorded in the bundle)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = PAPER_LR
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | cosine (with linear warm-up)
    warmup_epochs: float = 1.0
    patience: int = 5
    seed: int = 0
    device: str = "cpu"
    progress: bool = True


def class_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """Inverse object frequency on the training split, mean 1 over present classes."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(float)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def lr_at(step: int, total: int, warmup: int, base: float, schedule: str) -> float:
    if schedule == "constant":
        return base
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r} (constant, cosine)")
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def autocast(device: torch.device):  # noqa: ANN201 - context manager
    """Training steps: bf16 autocast on CUDA, nothing elsewhere (a CPU backward pass in bf16
    was slower than fp32 here). Inference follows `matcher.precision` instead."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


@torch.no_grad()
def infer(
    model: ArtefactClassifier,
    photos: Sequence[Photo],
    cache: PixelCache,
    *,
    device: torch.device,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(logits N x C float32, L2-normalised embeddings N x D float32) in eval mode, in the
    number format the matcher will serve them in (`matcher.precision`): the temperature and
    thresholds calibrated on these outputs hold for the served ones."""
    model.eval()
    logits, embeds = [], []
    for chunk, x in iterate_batches(photos, batch_size, cache):
        out, emb = served_forward(model, to_device(x, device), device)
        logits.append(out.float().cpu())
        embeds.append(emb.float().cpu())
        if progress:
            progress(len(chunk))
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros((0, model.embedding_dim), np.float32)
    return torch.cat(logits).numpy(), torch.cat(embeds).numpy()


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = opt.state_dict()
    tensors = {}
    for idx, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"opt.{idx}.{name}"] = torch.as_tensor(value).clone()
    return tensors, {"param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


class Checkpoint:
    """`dir/state.safetensors` + `dir/state.json`: everything needed to resume."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.tensors = self.directory / "state.safetensors"
        self.meta = self.directory / "state.json"

    def exists(self) -> bool:
        return self.tensors.is_file() and self.meta.is_file()

    def save(self, model: nn.Module, best: dict[str, torch.Tensor], opt, meta: dict) -> None:  # noqa: ANN001
        self.directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
        }
        tensors.update({f"best.{k}": v.contiguous() for k, v in best.items()})
        opt_tensors, opt_meta = _flatten_optimizer(opt)
        tensors.update({k: v.cpu().contiguous() for k, v in opt_tensors.items()})
        tmp = self.tensors.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        tmp.replace(self.tensors)
        tmp_meta = self.meta.with_suffix(".tmp")
        tmp_meta.write_text(json.dumps({**meta, "optimizer": opt_meta}), encoding="utf-8")
        tmp_meta.replace(self.meta)

    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict, dict]:
        tensors = load_file(str(self.tensors))
        meta = json.loads(self.meta.read_text(encoding="utf-8"))
        model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        opt = _unflatten_optimizer(tensors, meta["optimizer"])
        return model, best, opt, meta


@dataclass
class FitResult:
    history: list[dict]
    best_epoch: int
    best_val_accuracy: float
    seconds: float
    stopped_early: bool


def fit(
    model: ArtefactClassifier,
    train: Sequence[Photo],
    train_labels: Sequence[int],
    val: Sequence[Photo],
    val_labels: Sequence[int],
    config: TrainConfig,
    cache: PixelCache,
    *,
    checkpoint_dir: Path,
    augment: Augment | None = None,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Finetune `model` in place; on return it holds the best-on-validation weights."""
    device = torch.device(config.device)
    model = prepare(model, device)  # type: ignore[assignment]
    num_classes = model.head[-1].out_features
    weights = class_weights(train_labels, num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train) / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch) if config.schedule == "cosine" else 0
    ckpt = Checkpoint(checkpoint_dir)
    history: list[dict] = []
    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    best = {"epoch": -1, "val_accuracy": -1.0, "val_loss": float("inf")}
    start_epoch, bad_epochs, elapsed = 0, 0, 0.0
    fingerprint = {**asdict(config), "n_train": len(train), "classes": num_classes}
    fingerprint.pop("progress")
    if ckpt.exists():
        state, best_saved, opt_state, meta = ckpt.load()
        if meta.get("fingerprint") == fingerprint:
            model.load_state_dict(state)
            opt.load_state_dict(opt_state)
            best_state, history = best_saved, meta["history"]
            best, bad_epochs = meta["best"], meta["bad_epochs"]
            start_epoch, elapsed = meta["epoch"] + 1, meta["seconds"]
            log(f"resuming after epoch {meta['epoch'] + 1} from {ckpt.directory}")
        else:
            log(f"checkpoint in {ckpt.directory} is for another run; starting afresh")
    val_y = torch.tensor(list(val_labels), dtype=torch.long)
    stopped_early = meta_stop = bool(history) and bad_epochs >= config.patience
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        disable=not config.progress,
        transient=True,
    )
    with progress:
        for epoch in range(start_epoch, config.epochs):
            if meta_stop:
                break
            t0 = time.perf_counter()
            torch.manual_seed(config.seed * 100003 + epoch)  # dropout: reproducible on resume
            order = torch.randperm(
                len(train), generator=torch.Generator().manual_seed(config.seed * 7919 + epoch)
            ).tolist()
            rng = np.random.default_rng([config.seed, epoch])
            task = progress.add_task(f"epoch {epoch + 1}/{config.epochs}", total=len(train))
            model.train()
            total_loss, seen, correct = 0.0, 0, 0
            for step, (chunk, x) in enumerate(
                iterate_batches(
                    train, config.batch_size, cache, order=order, augment=augment, rng=rng
                )
            ):
                if len(chunk) < 2:  # BatchNorm cannot train on one sample
                    continue
                lr = lr_at(
                    epoch * steps_per_epoch + step, total_steps, warmup, config.lr, config.schedule
                )
                for group in opt.param_groups:
                    group["lr"] = lr
                y = torch.tensor([train_labels[i] for i in chunk], device=device)
                with autocast(device):
                    logits = model(to_device(x, device))
                loss = nn.functional.nll_loss(
                    torch.log_softmax(logits.float(), dim=1), y, weight=weights
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total_loss += float(loss.detach()) * len(chunk)
                seen += len(chunk)
                correct += int((logits.argmax(1) == y).sum())
                progress.advance(task, len(chunk))
            progress.remove_task(task)
            val_logits, _ = infer(
                model, val, cache, device=device, batch_size=config.batch_size * 2
            )
            if len(val):
                vl = torch.from_numpy(val_logits)
                val_loss = float(nn.functional.cross_entropy(vl, val_y))
                val_acc = float((vl.argmax(1) == val_y).float().mean())
            else:
                val_loss, val_acc = float("nan"), float("nan")
            seconds = time.perf_counter() - t0
            elapsed += seconds
            row = {
                "epoch": epoch + 1,
                "lr": lr if seen else config.lr,
                "train_loss": total_loss / max(1, seen),
                "train_accuracy": correct / max(1, seen),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": seconds,
            }
            history.append(row)
            improved = (val_acc > best["val_accuracy"]) or (
                val_acc == best["val_accuracy"] and val_loss < best["val_loss"]
            )
            if improved or not len(val):
                best = {"epoch": epoch + 1, "val_accuracy": val_acc, "val_loss": val_loss}
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                bad_epochs = 0
            else:
                bad_epochs += 1
            ckpt.save(
                model,
                best_state,
                opt,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "history": history,
                    "best": best,
                    "bad_epochs": bad_epochs,
                    "seconds": elapsed,
                },
            )
            log(
                f"epoch {epoch + 1:3d}  train loss {row['train_loss']:.4f} acc "
                f"{row['train_accuracy']:.3f}  val loss {val_loss:.4f} acc {val_acc:.3f}  "
                f"{seconds:.1f}s{'  *' if improved else ''}"
            )
            if bad_epochs >= config.patience:
                stopped_early = True
                log(f"early stop: no validation improvement for {bad_epochs} epochs")
                break
    model.load_state_dict(best_state)
    return FitResult(
        history, int(best["epoch"]), float(best["val_accuracy"]), elapsed, stopped_early
    )
