"""Rebuilding a zoo model from its recipe: trained, pruned from another zoo model, or set by hand; then saved as
its checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

from ..models import compiled
from ..models.twins import magnitude_pruned_twin
from ..models.zoo import RECIPES, checkpoint_path, load, save_checkpoint
from .train import train


def train_and_save(name: str, out: Path | None = None, device: str = "cpu", progress: bool = True) -> Path:
    """Reproduce zoo model ``name`` from its recipe and write its checkpoint (a pruned recipe prunes its source's
    shipped checkpoint)."""
    recipe = RECIPES[name]
    start = time.perf_counter()
    if recipe.hand_set:
        model = compiled.build()
    elif recipe.pruned_from:
        model = magnitude_pruned_twin(load(recipe.pruned_from), recipe.prune_fraction).model
    else:
        model = train(recipe, device=device, progress=progress).to("cpu")
    path = out or checkpoint_path(name)
    save_checkpoint(model, recipe, path, time.perf_counter() - start)
    return path
