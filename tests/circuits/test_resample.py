"""Resample ablation: each prompt's counterfactual is a real prompt of the task with another target and as many
tokens; an ablated node takes its activation there, position for position; a prompt without one takes the pooled
mean; kept nodes pass untouched, and the search runs on it."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import PromptBatches, SearchSettings, ablated_logit_diffs, logit_diffs_under, node_sites, node_statistics, search_circuits
from fracbench.circuits.ablation import Resample
from fracbench.config import RESAMPLE, check_ablation
from fracbench.circuits.counterfactual import counterfactual_examples, token_counts
from fracbench.models import resolve_model
from fracbench.tasks import get_task
from fracbench.tasks.base import in_test_split

N = 48


@pytest.fixture(scope="module")
def setup(tiny_adapter):
    task = get_task("bracket_depth")
    examples = task.examples("train", N, 0)
    counterfactuals = counterfactual_examples(tiny_adapter, task, examples, "train", 0)
    batches = PromptBatches.build(tiny_adapter, task, examples, batch_size=16, counterfactuals=counterfactuals)
    sites = node_sites(tiny_adapter)
    stats = node_statistics(tiny_adapter, batches, sites, RESAMPLE)
    return tiny_adapter, task, examples, counterfactuals, batches, sites, stats


def test_a_counterfactual_has_another_target_as_many_tokens_and_comes_from_the_same_split(setup) -> None:
    adapter, _, examples, counterfactuals, *_ = setup
    paired = [(x, c) for x, c in zip(examples, counterfactuals) if c is not None]
    assert len(paired) >= N - 2  # the tails of the length distribution may have none
    assert all(c.target != x.target for x, c in paired)
    assert token_counts(adapter, [x.prompt for x, _ in paired]) == token_counts(adapter, [c.prompt for _, c in paired])
    assert not any(in_test_split(c.prompt) for _, c in paired)  # train prompts, like the ones they stand in for
    assert len({c.prompt for _, c in paired}) == len(paired)  # each draw serves one prompt


def test_counterfactuals_are_the_same_for_the_same_seed_and_differ_for_another(setup) -> None:
    adapter, task, examples, counterfactuals, *_ = setup
    assert counterfactual_examples(adapter, task, examples, "train", 0) == counterfactuals
    assert counterfactual_examples(adapter, task, examples, "train", 1) != counterfactuals


def test_keeping_every_node_under_resample_is_the_plain_forward(setup) -> None:
    adapter, _, _, _, batches, sites, stats = setup
    everything = {s.name: torch.ones(s.n_nodes, dtype=torch.bool) for s in sites}
    assert isinstance(stats.values, Resample)
    assert torch.equal(ablated_logit_diffs(adapter, batches, sites, everything, stats.values), logit_diffs_under(adapter, batches))


def test_an_ablated_node_takes_its_value_on_the_counterfactual_at_the_same_position(setup) -> None:
    adapter, _, _, _, batches, sites, stats = setup
    site = next(s for s in sites if s.name.endswith("mlp.hook_post"))
    cf, matched = batches.counterfactuals[0]
    values = batches.resampled(adapter, sites, 0, stats.means)[site.name]
    clean = adapter.forward(cf, capture=[site.name]).activations[site.name]
    assert bool(matched.any())
    assert torch.equal(values[matched], clean[matched])


def test_a_prompt_without_a_counterfactual_takes_the_pooled_mean(setup) -> None:
    adapter, task, examples, _, _, sites, stats = setup
    unpaired = PromptBatches.build(adapter, task, examples, batch_size=16, counterfactuals=[None] * len(examples))
    nothing = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool) for s in sites}
    assert torch.equal(ablated_logit_diffs(adapter, unpaired, sites, nothing, stats.values),
                       ablated_logit_diffs(adapter, unpaired, sites, nothing, stats.means))


def test_resample_needs_batches_built_with_counterfactuals(setup) -> None:
    adapter, task, examples, _, _, sites, stats = setup
    plain = PromptBatches.build(adapter, task, examples, batch_size=16)
    nothing = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool) for s in sites}
    with pytest.raises(ValueError, match="built with counterfactuals"):
        ablated_logit_diffs(adapter, plain, sites, nothing, stats.values)


def test_resample_is_measured_but_not_a_run_option() -> None:
    assert check_ablation(RESAMPLE, measured=True) == RESAMPLE
    with pytest.raises(ValueError, match="'positional_mean', 'mean', got 'resample'"):
        check_ablation(RESAMPLE)


def test_the_search_runs_on_resampled_values_with_restarts(setup) -> None:
    adapter, _, _, _, batches, sites, stats = setup
    found = search_circuits(adapter, sites, batches, stats.values, SearchSettings(steps=4, restarts=2, target=0.5, seed=0))
    assert len(found) == 2 and all(c.n_total == sum(s.n_nodes for s in sites) for c in found)


@pytest.mark.slow
def test_resampling_every_node_of_a_trained_model_carries_the_counterfactual_s_answer() -> None:
    """On the dense zoo model the all-resampled model answers below chance on the prompts' own answers (it reads the
    counterfactuals', which are their foils); the all-mean-ablated model stays near chance."""
    adapter = resolve_model("zoo:dense").load("cpu")
    task = get_task("quote_close")
    examples = task.examples("test", 64, 0)
    batches = PromptBatches.build(adapter, task, examples, 32, counterfactual_examples(adapter, task, examples, "test", 0))
    sites = node_sites(adapter)
    stats = node_statistics(adapter, batches, sites, RESAMPLE)
    nothing = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool) for s in sites}
    resampled = (ablated_logit_diffs(adapter, batches, sites, nothing, stats.values) > 0).double().mean()
    mean_ablated = (ablated_logit_diffs(adapter, batches, sites, nothing, stats.means) > 0).double().mean()
    assert resampled < 0.2 and abs(float(mean_ablated) - 0.5) < 0.2
