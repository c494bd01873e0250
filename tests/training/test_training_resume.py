"""An interrupted run resumes from its checkpoint and ends where an uninterrupted one does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from matcher.model import ArtefactClassifier
from matcher.preprocess import Preprocess
from training.catalogue import load_manifest
from training.data import PixelCache
from training.splits import make_split
from training.trainer import TrainConfig, fit


class Interrupt(Exception):
    pass


def _setup(small_catalogue: Path):
    cat = load_manifest(small_catalogue)
    split = make_split(cat.photos, seed=0, holdout_fraction=0.0)
    index = {o: i for i, o in enumerate(split.objects)}
    train = cat.subset(split.keys("train"))
    val = cat.subset(split.keys("val"))
    labels = [index[p.object_id] for p in train]
    val_labels = [index[p.object_id] for p in val]
    cache = PixelCache(Preprocess(32, (0.5,) * 3, (0.5,) * 3))
    return split, train, labels, val, val_labels, cache


def _model(n: int) -> ArtefactClassifier:
    torch.manual_seed(0)
    return ArtefactClassifier("test_efficientnet", n)


def test_resume_matches_uninterrupted(small_catalogue: Path, tmp_path: Path) -> None:
    split, train, labels, val, val_labels, cache = _setup(small_catalogue)
    config = TrainConfig(
        epochs=3, batch_size=8, lr=1e-3, patience=10, progress=False, schedule="cosine"
    )
    straight = _model(len(split.objects))
    r1 = fit(
        straight,
        train,
        labels,
        val,
        val_labels,
        config,
        cache,
        checkpoint_dir=tmp_path / "a",
        log=lambda s: None,
    )

    def stop_after_two(line: str) -> None:
        if line.startswith("epoch   2"):
            raise Interrupt

    interrupted = _model(len(split.objects))
    with pytest.raises(Interrupt):
        fit(
            interrupted,
            train,
            labels,
            val,
            val_labels,
            config,
            cache,
            checkpoint_dir=tmp_path / "b",
            log=stop_after_two,
        )
    messages: list[str] = []
    resumed = _model(len(split.objects))
    r2 = fit(
        resumed,
        train,
        labels,
        val,
        val_labels,
        config,
        cache,
        checkpoint_dir=tmp_path / "b",
        log=messages.append,
    )
    assert any("resuming after epoch 2" in m for m in messages)
    assert [h["epoch"] for h in r2.history] == [1, 2, 3]
    assert r2.best_epoch == r1.best_epoch
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k
