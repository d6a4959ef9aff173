"""The shipped zoo has the organization its recipes promise (the issue's acceptance bar).

These evaluate the real checkpoints: the honest models solve every task in
distribution, the shortcut model breaks out of distribution, the random model
guesses, the sparse model is sparse, and everything fits in 20 MB.
"""

from __future__ import annotations

import math
import statistics

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


def ood_accuracies(result: TaskResult) -> list[float]:
    return [b.accuracy for b in result.behaviour.values() if b.ood_axis is not None]


@pytest.mark.parametrize("model", ["dense", "sparse"])
def test_honest_models_solve_every_task_in_distribution(behaviour, model: str) -> None:
    accuracy = {t: r.behaviour["test"].accuracy for t, r in behaviour[model].items()}
    assert min(accuracy.values()) >= 0.95, accuracy


def degradation(result: TaskResult) -> float:
    """In-distribution accuracy minus the mean accuracy over every OOD split."""
    return result.behaviour["test"].accuracy - statistics.mean(ood_accuracies(result))


def test_shortcut_model_solves_in_distribution_and_degrades_out_of_it(behaviour) -> None:
    shortcut, dense = behaviour["shortcut"], behaviour["dense"]
    assert min(r.behaviour["test"].accuracy for r in shortcut.values()) >= 0.9
    # The cue is random out of distribution: the shortcut model loses more there than its honest twin,
    # on average and on most tasks (on dict_or_list it learned the real variable too: docs/zoo.md).
    gap = {t: degradation(shortcut[t]) - degradation(dense[t]) for t in shortcut}
    assert statistics.mean(gap.values()) >= 0.1, gap
    assert sum(g > 0.05 for g in gap.values()) >= 4, gap


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
