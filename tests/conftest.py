"""Shared fixtures: a tiny untrained native model, and a zoo made of it (no shipped checkpoint needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fracbench.models import zoo
from fracbench.models.native import NativeAdapter
from fracbench.models.tokenizer import CharTokenizer
from fracbench.models.transformer import Transformer, TransformerConfig


@pytest.fixture(scope="session")
def tiny_adapter() -> NativeAdapter:
    """An untrained one-layer transformer: fast, deterministic, scores every task (badly)."""
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=len(CharTokenizer()), d_model=32, n_layers=1, n_heads=2, d_mlp=64, n_ctx=320)
    return NativeAdapter(Transformer(cfg), "tiny")


@pytest.fixture
def tiny_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_adapter: NativeAdapter) -> Path:
    """Every zoo name backed by a checkpoint of the tiny model, in a temporary checkpoint directory."""
    directory = tmp_path / "checkpoints"
    monkeypatch.setattr(zoo, "checkpoint_dir", lambda: directory)
    for name in zoo.RECIPES:
        zoo.save_checkpoint(tiny_adapter.model, zoo.RECIPES[name], zoo.checkpoint_path(name), seconds=0.0)
    return directory
