"""The circuit control task: labels decided by the prompt's length, a search normalized by the real task's span, and
no control where the model shows no behaviour."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import PromptBatches, node_sites, node_statistics
from fracbench.circuits.control import control_examples, control_flips, measure_control
from fracbench.circuits.keys import node_order
from fracbench.circuits.search import SearchSettings, learn_scores
from fracbench.tasks import get_task


def test_control_labels_are_a_seeded_random_function_of_the_prompt_length_alone() -> None:
    task = get_task("bracket_depth")
    examples = task.examples("train", 400, 0)
    flips = control_flips(task, examples, seed=0)
    by_length: dict[int, set[bool]] = {}
    for ex, flip in zip(examples, flips):
        by_length.setdefault(len(ex.prompt), set()).add(flip)
    assert all(len(f) == 1 for f in by_length.values())  # one label per length: a type, as in Hewitt & Liang's controls
    assert 0.25 < sum(flips) / len(flips) < 0.75
    assert control_flips(task, examples, seed=1) != flips and control_flips(task, examples, seed=0) == flips


def test_control_examples_swap_target_and_foil_where_flipped_and_nothing_else() -> None:
    examples = get_task("quote_close").examples("train", 6, 0)
    flips = [True, False, True, False, False, True]
    for ex, control, flip in zip(examples, control_examples(examples, flips), flips):
        assert (control.target, control.foil) == ((ex.foil, ex.target) if flip else (ex.target, ex.foil))
        assert control.prompt == ex.prompt and control.latents == ex.latents


def test_the_search_takes_the_real_task_s_span_and_refuses_to_search_below_min_effect(tiny_adapter) -> None:
    task = get_task("quote_close")
    sites = node_sites(tiny_adapter)
    batches = PromptBatches.build(tiny_adapter, task, task.examples("train", 8, 0), 4)
    stats = node_statistics(tiny_adapter, batches, sites)
    assert learn_scores(tiny_adapter, sites, batches, stats.values, SearchSettings(steps=2), spans=[0.1, 0.1]) is None
    scores = learn_scores(tiny_adapter, sites, batches, stats.values, SearchSettings(steps=2), spans=[2.0, 2.0])
    assert scores is not None and set(scores[0]) == {s.name for s in sites}
    with pytest.raises(ValueError, match=r"spans: one per batch \(2\), got 1"):
        learn_scores(tiny_adapter, sites, batches, stats.values, SearchSettings(steps=2), spans=[2.0])


def test_no_control_where_the_model_shows_no_behaviour(tiny_adapter) -> None:
    task = get_task("quote_close")
    sites = node_sites(tiny_adapter)
    search, test = task.examples("train", 8, 0), task.examples("test", 6, 0)
    batches, test_batches = PromptBatches.build(tiny_adapter, task, search, 4), PromptBatches.build(tiny_adapter, task, test, 4)
    stats = node_statistics(tiny_adapter, batches, sites)
    order = node_order(tiny_adapter, sites, stats.means)
    assert measure_control(tiny_adapter, task, sites, stats.values, order, search, test, test_batches, 10, [1, 10],
                           SearchSettings(steps=2, seed=0), search_batch=4) is None


@pytest.mark.slow
def test_the_dense_model_s_circuit_is_selective_against_its_control() -> None:
    """The honest model's bracket_depth circuit is a mechanism the mask did not make: the same search for length-typed
    labels gets under half of the circuit's effect at the circuit's size (measured 0.08 at n 128)."""
    import numpy as np

    from fracbench.models import zoo

    adapter, task = zoo.load("dense"), get_task("bracket_depth")
    sites = node_sites(adapter)
    search, test = task.examples("train", 128, 0), task.examples("test", 128, 0)
    batches, test_batches = PromptBatches.build(adapter, task, search, 64), PromptBatches.build(adapter, task, test, 64)
    stats = node_statistics(adapter, batches, sites)
    order = node_order(adapter, sites, stats.means)
    control = measure_control(adapter, task, sites, stats.values, order, search, test, test_batches, 350, [350], SearchSettings(seed=0))
    sign = np.where(control.flip, -1.0, 1.0)
    nothing = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool) for s in sites}
    from fracbench.circuits import ablated_logit_diffs, logit_diffs_under

    full, empty = logit_diffs_under(adapter, test_batches).numpy(), ablated_logit_diffs(adapter, test_batches, sites, nothing, stats.values).numpy()
    control_share = (np.mean(sign * control.circuit.numpy()) - np.mean(sign * empty)) / (full.mean() - empty.mean())
    assert control_share < 0.5 and np.mean(sign * full > 0) < 0.65  # and the model itself does not compute the control
