"""The mask search started from EAP-IG ranks (SearchSettings(initial="eap-ig")): an experiment beside the default."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import PromptBatches, SearchSettings, node_sites, node_statistics
from fracbench.circuits.keys import node_order
from fracbench.circuits.search import INITIAL_SCORE, _initial_scores, average_ranks, learn_scores
from fracbench.models import load_model
from fracbench.tasks import get_task


def test_tied_values_share_their_mean_rank_across_sites() -> None:
    ranks = average_ranks({"a": torch.tensor([3.0, 1.0, 1.0]), "b": torch.tensor([2.0, 5.0])})
    assert ranks["a"].tolist() == [4.0, 1.5, 1.5] and ranks["b"].tolist() == [3.0, 5.0]


def test_the_ranks_are_scipy_s_average_ranks() -> None:
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    values = {"a": torch.randint(0, 20, (300,), generator=g).double(), "b": torch.randint(0, 20, (4, 50), generator=g).double()}  # ties
    ranks = average_ranks(values)
    expected = stats.rankdata(torch.cat([values["a"], values["b"].reshape(-1)]).numpy(), method="average")
    assert torch.cat([ranks["a"], ranks["b"].reshape(-1)]).numpy().tolist() == expected.tolist()


def test_a_ranked_start_keeps_every_node_with_the_default_mean_and_the_ranks_order() -> None:
    adapter = load_model("zoo:compiled")
    sites = node_sites(adapter)
    task = get_task("quote_close")
    batches = PromptBatches.build(adapter, task, task.examples("train", 64, 0), 64)
    stats = node_statistics(adapter, batches, sites)
    order = node_order(adapter, sites, stats.means, stats.stds)
    ranks = {s.name: torch.randperm(s.n_nodes, generator=torch.Generator().manual_seed(i)).double() for i, s in enumerate(sites)}
    ranks = average_ranks(ranks)
    start = _initial_scores(adapter, sites, 0, 1, order, ranks)
    flat = torch.cat([start[s.name][0] for s in sites])
    assert (flat > 0).all() and abs(float(flat.mean()) - INITIAL_SCORE) < 1e-3
    assert torch.corrcoef(torch.stack([flat, torch.cat([ranks[s.name].float() for s in sites])]))[0, 1] > 0.9  # the noise (0.01) blurs a spread of 0.1


def test_an_eap_ig_started_search_differs_from_the_constant_start_and_is_deterministic() -> None:
    adapter = load_model("zoo:compiled")
    sites = node_sites(adapter)
    task = get_task("quote_close")
    batches = PromptBatches.build(adapter, task, task.examples("train", 64, 0), 64)
    means = node_statistics(adapter, batches, sites).values
    ranked = SearchSettings(steps=5, initial="eap-ig")
    first, again = learn_scores(adapter, sites, batches, means, ranked), learn_scores(adapter, sites, batches, means, ranked)
    constant = learn_scores(adapter, sites, batches, means, SearchSettings(steps=5))
    assert all(torch.equal(first[0][s.name], again[0][s.name]) for s in sites)
    assert not all(torch.allclose(first[0][s.name], constant[0][s.name]) for s in sites)


def test_an_initial_start_is_refused_where_no_masks_are_learned() -> None:
    with pytest.raises(ValueError, match="learns none"):
        SearchSettings(ranking="eap-ig", initial="eap-ig")
    with pytest.raises(ValueError, match="unknown initial"):
        SearchSettings(initial="ranked")
