"""Tiny checkpoints in the published layout, made once per session (see generator/testing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from generator.dalle import DalleMini
from generator.testing import make_tiny_checkpoints


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_checkpoints(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoints: tuple[Path, Path]) -> DalleMini:
    torch.manual_seed(0)
    return DalleMini.load(*tiny_checkpoints)
