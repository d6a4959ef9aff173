"""Regimes for reuse: prompts by length and the usable OOD splits pooled, each drawn deterministically and apart from
the test prompts; a model without behaviour gets no regime circuit."""

from __future__ import annotations

import torch

from fracbench.circuits import PromptBatches, node_sites, node_statistics
from fracbench.config import RunConfig
from fracbench.circuits.keys import node_order
from fracbench.circuits.regimes import (SHORT_PROMPT_CHARS, ReportedCircuit, is_short, length_regime_examples, measure_regimes,
                                        ood_pool, ood_regime_examples)
from fracbench.tasks import get_task


def test_length_regimes_take_the_train_split_in_draw_order_filtered_by_length() -> None:
    task = get_task("set_or_string")  # short prompts are rare there: a quarter of the train split is under 34 characters
    short = length_regime_examples(task, "short", 40, seed=0)
    assert len(short) == 40 and all(len(ex.prompt) < SHORT_PROMPT_CHARS for ex in short)
    train = task.examples("train", 2000, 0)
    assert short == [ex for ex in train if is_short(ex)][:40]
    long = length_regime_examples(task, "long", 40, seed=0)
    assert all(len(ex.prompt) >= SHORT_PROMPT_CHARS for ex in long) and long == length_regime_examples(task, "long", 40, seed=0)


def test_the_ood_regime_takes_the_usable_splits_in_turn_with_prompts_apart_from_the_test_prompts() -> None:
    task = get_task("quote_close")
    splits = ["ood/other_quote_in_body/1", "ood/long_body/1"]
    drawn = ood_regime_examples(task, splits, 7, seed=0)
    assert len(drawn) == 7
    long_body = {ex.prompt for ex in task.examples("ood/long_body/1", 512, 0)}
    assert drawn[0].prompt not in long_body  # sorted splits, in turn: long_body first, drawn with another seed
    assert ood_regime_examples(task, [], 7, seed=0) == []


def test_the_ood_pool_takes_an_equal_share_of_each_usable_split() -> None:
    assert ood_pool(["b", "a"], 5) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert ood_pool([], 5) == [] and len(ood_pool(["a"], 5)) == 5


def test_a_model_without_behaviour_gets_no_regime_circuit_but_the_reported_one(tiny_adapter) -> None:
    task = get_task("bracket_depth")
    sites = node_sites(tiny_adapter)
    test = task.examples("test", 6, 0)
    batches = PromptBatches.build(tiny_adapter, task, test, 4)
    stats = node_statistics(tiny_adapter, batches, sites)
    kept = {s.name: torch.ones(s.n_nodes, dtype=torch.bool) for s in sites}
    reported = ReportedCircuit(kept, 0.95, torch.zeros(6, dtype=torch.float64), {})
    measured = measure_regimes(tiny_adapter, task, sites, stats.values, node_order(tiny_adapter, sites, stats.means), reported, test,
                               batches, [], RunConfig(n_test=6, seed=0, batch_size=4), n_search=4, search_batch=4, steps=1)
    assert set(measured.circuits) == {"id", "short", "long"} and measured.ood_prompts == []
    assert measured.circuits["short"].search_sufficiency is None and measured.circuits["long"].test is None
    assert measured.circuits["id"].n_nodes == sum(s.n_nodes for s in sites) and len(measured.circuits["id"].random_test) == 3
    assert measured.short == [is_short(ex) for ex in test]
