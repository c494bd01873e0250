"""Fixtures for training tests: small generated catalogues, CPU threads kept low."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_data import demo_catalogue

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def small_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 generated objects (3-10 photos each), 3 with a near-duplicate re-save."""
    return demo_catalogue(tmp_path_factory.mktemp("catalogue"), objects=10, duplicates=3)


@pytest.fixture(scope="session")
def train_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 generated objects for the few-epoch finetune."""
    return demo_catalogue(tmp_path_factory.mktemp("train-catalogue"), objects=12, seed=1)
