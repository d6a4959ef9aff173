"""The shipped zoo has the organization its recipes promise (the issue's acceptance bar).

These evaluate the real checkpoints: the honest models solve every task in
distribution, the shortcut model follows its cue when it is flipped, the random model
guesses, the sparse model is sparse, and everything fits in 20 MB.
"""

from __future__ import annotations

import math

import pytest

from fracbench.models import zoo
from fracbench.models.sparsity import weight_density
from fracbench.results import TaskResult
from fracbench.runner import evaluate_task
from fracbench.tasks import TASKS

N = 200  # items per split: a 95% accuracy bar has a standard error of about 1.5 points here


@pytest.fixture(scope="module")
def behaviour() -> dict[str, dict[str, TaskResult]]:
    return {m: {t: evaluate_task(zoo.load(m), TASKS[t], N, seed=0, probes=False, circuits=False) for t in TASKS} for m in zoo.RECIPES}


@pytest.mark.parametrize("model", ["dense", "sparse"])
def test_honest_models_solve_every_task_in_distribution(behaviour, model: str) -> None:
    accuracy = {t: r.behaviour["test"].accuracy for t, r in behaviour[model].items()}
    assert min(accuracy.values()) >= 0.95, accuracy


def test_shortcut_model_solves_every_task_with_its_cue_and_follows_it_when_flipped(behaviour) -> None:
    """Trained where the cue always agrees: perfect with it, worse with it pointing at the foil on the tasks where it
    took the cue (five of six at n = 512; on quote_close it did not: docs/zoo.md), while its honest twin does not care."""
    shortcut, dense = behaviour["shortcut"], behaviour["dense"]
    assert min(r.behaviour["cue_agree"].accuracy for r in shortcut.values()) >= 0.9
    drop = {t: r.behaviour["cue_agree"].accuracy - r.behaviour["cue_flip"].accuracy for t, r in shortcut.items()}
    assert sum(d > 0.05 for d in drop.values()) >= 4, drop
    assert all(abs(r.behaviour["cue_agree"].accuracy - r.behaviour["cue_flip"].accuracy) <= 0.05 for r in dense.values())


def test_random_model_guesses(behaviour) -> None:
    for task, result in behaviour["random"].items():
        assert 0.3 <= result.behaviour["test"].accuracy <= 0.7, task


def test_sparse_model_keeps_its_target_density() -> None:
    recipe = zoo.RECIPES["sparse"]
    matrices = zoo.load("sparse").model.weight_matrices()
    # top-k keeps ceil(density * numel) per matrix; the per-neuron minimum adds at most that many per row and column
    allowed = sum(
        min(w.numel(), math.ceil(recipe.density * w.numel()) + recipe.min_per_neuron * sum(w.shape)) for w in matrices
    )
    assert weight_density(matrices) * sum(w.numel() for w in matrices) <= allowed
    assert weight_density(matrices) < 2 * recipe.density
    assert weight_density(zoo.load("dense").model.weight_matrices()) > 0.99


def test_all_checkpoints_together_fit_in_20_mb() -> None:
    assert sum(zoo.checkpoint_path(m).stat().st_size for m in zoo.RECIPES) <= 20 * 2**20
