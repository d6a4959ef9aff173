"""The shipped zoo has the organization its recipes promise (the issue's acceptance bar).

These evaluate the real checkpoints on the in-distribution splits: the honest models (every training seed, and the
routed and pruned models) solve every task, the shortcut model follows its cue when it is flipped, the random model
guesses, the compiled model does quote_close and bracket_depth, the sparse model is sparse, and everything fits in 30 MB.
"""

from __future__ import annotations

import math

import pytest

from fracbench.behaviour import logit_diffs
from fracbench.models import zoo
from fracbench.training.sparsity import weight_density
from fracbench.tasks import TASKS

N = 200  # items per split: a 95% accuracy bar has a standard error of about 1.5 points here
SEEDS = ("", "-s1", "-s2")


@pytest.fixture(scope="module")
def accuracy():
    """``accuracy(model, task, split)``: choice accuracy on N items (each model loaded and each split measured once)."""
    models, cache = {}, {}

    def measure(model: str, task: str, split: str = "test") -> float:
        if (model, task, split) not in cache:
            adapter = models.setdefault(model, zoo.load(model))
            cache[model, task, split] = float((logit_diffs(adapter, TASKS[task], TASKS[task].examples(split, N, 0)) > 0).float().mean())
        return cache[model, task, split]

    return measure


@pytest.mark.parametrize("model", [f"{recipe}{seed}" for recipe in ("dense", "sparse") for seed in SEEDS] + ["routed"])
def test_honest_models_solve_every_task_in_distribution(accuracy, model: str) -> None:
    scores = {t: accuracy(model, t) for t in TASKS}
    assert min(scores.values()) >= 0.95, scores


def test_the_pruned_model_still_does_every_task(accuracy) -> None:
    """Half of every weight matrix zeroed costs it up to 10 points (set_or_string: 0.90 against dense's 1.00 at N = 200,
    docs/zoo.md), far from chance: a verdict on it is about how it is organized, not about failing the task."""
    assert min(accuracy("pruned", t) for t in TASKS) >= 0.85, {t: accuracy("pruned", t) for t in TASKS}


def test_the_compiled_model_does_the_two_tasks_it_was_built_for_and_no_other_it_has_no_answer_for(accuracy) -> None:
    assert accuracy("compiled", "quote_close") == accuracy("compiled", "bracket_depth") == 1.0
    assert accuracy("compiled", "set_or_string") == accuracy("compiled", "copy_name") == 0.0  # both logits 0: a tie is wrong


@pytest.mark.parametrize("seed", SEEDS)
def test_shortcut_model_solves_every_task_with_its_cue_and_follows_it_when_flipped(accuracy, seed: str) -> None:
    """Trained where the cue always agrees: perfect with it, worse with it pointing at the foil on the tasks where it
    took the cue (five of six at n = 512; on quote_close it did not: docs/zoo.md), while its honest twin does not care."""
    shortcut, dense = f"shortcut{seed}", f"dense{seed}"
    assert min(accuracy(shortcut, t, "cue_agree") for t in TASKS) >= 0.9
    drop = {t: accuracy(shortcut, t, "cue_agree") - accuracy(shortcut, t, "cue_flip") for t in TASKS}
    assert sum(d > 0.05 for d in drop.values()) >= 4, drop
    assert all(abs(accuracy(dense, t, "cue_agree") - accuracy(dense, t, "cue_flip")) <= 0.05 + 1e-9 for t in TASKS)  # 10 of 200 items


def test_random_model_guesses(accuracy) -> None:
    for task in TASKS:
        assert 0.3 <= accuracy("random", task) <= 0.7, task


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


def test_all_checkpoints_together_fit_in_30_mb() -> None:
    assert sum(zoo.checkpoint_path(m).stat().st_size for m in zoo.RECIPES) <= 30 * 2**20  # issue 14: the whole zoo within 30 MB
