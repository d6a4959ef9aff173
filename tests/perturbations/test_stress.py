"""Stress curves: seeded, exact at zero strength, and the model is left as it was found."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import PromptBatches, ablation_interventions, logit_diffs_under, node_sites, node_statistics
from fracbench.config import ABLATIONS
from fracbench.circuits.keys import node_order
from fracbench.models.twins import permuted_twin
from fracbench.perturbations import stress
from fracbench.perturbations.inputs import DISTRACTOR_LEVELS
from fracbench.tasks import get_task


@pytest.fixture(scope="module")
def setup(tiny_adapter):
    task = get_task("bracket_depth")
    sites = node_sites(tiny_adapter)
    batches = PromptBatches.build(tiny_adapter, task, task.examples("test", 16, 0), 8)
    stats = node_statistics(tiny_adapter, batches, sites)
    g = torch.Generator().manual_seed(0)
    kept = {s.name: torch.rand(s.n_nodes, generator=g) < 0.5 for s in sites}
    return tiny_adapter, task, sites, batches, stats, kept


@pytest.fixture(scope="module")
def order(setup):
    adapter, _, sites, *_ = setup
    return node_order(adapter, sites)


def clean_circuit(setup) -> torch.Tensor:
    adapter, _, sites, batches, stats, kept = setup
    return logit_diffs_under(adapter, batches, ablation_interventions(sites, kept, stats.means))


def test_zero_noise_and_zero_dropout_are_the_clean_circuit_and_model(setup, order) -> None:
    adapter, _, sites, batches, stats, kept = setup
    noise = stress.activation_noise(adapter, sites, batches, stats, kept, seed=0, order=order, sigmas=(0.0,))[0]
    drop = stress.dropout(adapter, sites, batches, stats, kept, seed=0, order=order, fractions=(0.0,))[0]
    assert torch.allclose(noise.circuit, clean_circuit(setup)) and torch.allclose(drop.circuit, clean_circuit(setup))
    assert torch.allclose(noise.model, logit_diffs_under(adapter, batches)) and torch.equal(drop.model, logit_diffs_under(adapter, batches))


def test_noise_is_seeded(setup, order) -> None:
    adapter, _, sites, batches, stats, kept = setup
    a, b, c = (stress.activation_noise(adapter, sites, batches, stats, kept, seed=s, order=order, sigmas=(1.0,))[0] for s in (0, 0, 1))
    assert torch.equal(a.circuit, b.circuit) and not torch.equal(a.circuit, c.circuit)


def test_the_model_and_the_circuit_draw_the_same_noise(setup, order) -> None:
    """Common random numbers: a circuit of every node, perturbed, is the perturbed model exactly (scores v2 drew the
    circuit's noise after the model's, so the two curves differed by the noise alone)."""
    adapter, _, sites, batches, stats, _ = setup
    everything = {s.name: torch.ones(s.n_nodes, dtype=torch.bool) for s in sites}
    point = stress.activation_noise(adapter, sites, batches, stats, everything, seed=0, order=order, sigmas=(2.0,))[0]
    assert torch.equal(point.model, point.circuit) and not torch.equal(point.model, logit_diffs_under(adapter, batches))


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_stress_draws_follow_the_nodes_of_a_permuted_twin(setup, order, ablation: str) -> None:
    """The twin's neurons and heads are reordered, and its circuit is the same nodes moved: its curves are the
    original's up to float summation order, under either ablation (scores v2 drew noise and dropout subsets by node index)."""
    adapter, task, sites, batches, _, _ = setup
    twin = permuted_twin(adapter, seed=3)
    twin_batches = PromptBatches.build(twin, task, task.examples("test", 16, 0), 8)
    stats, twin_stats = node_statistics(adapter, batches, sites, ablation), node_statistics(twin, twin_batches, sites, ablation)
    keys, twin_keys = order, node_order(twin, sites)
    g = torch.Generator().manual_seed(1)
    kept = {s.name: torch.rand(s.n_nodes, generator=g) < 0.5 for s in sites}
    # the twin's kept set: the node holding the same key, i.e. the same rank
    twin_kept = {s.name: kept[s.name][torch.argsort(keys.ranks[s.name])][twin_keys.ranks[s.name]] for s in sites}
    for kind, kwargs in (("activation_noise", dict(sigmas=(1.0,))), ("dropout", dict(fractions=(0.5,))), ("weight_noise", dict(sigmas=(1.0,)))):
        a = getattr(stress, kind)(adapter, sites, batches, stats, kept, seed=0, order=keys, **kwargs)[0]
        b = getattr(stress, kind)(twin, sites, twin_batches, twin_stats, twin_kept, seed=0, order=twin_keys, **kwargs)[0]
        assert torch.allclose(a.circuit, b.circuit, atol=1e-4) and torch.allclose(a.model, b.model, atol=1e-4), kind


def test_weight_noise_leaves_the_weights_as_they_were(setup) -> None:
    adapter, _, sites, batches, stats, kept = setup
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    points = stress.weight_noise(adapter, sites, batches, stats, kept, seed=0, order=node_order(adapter, sites), sigmas=(0.5, 2.0))
    assert not torch.equal(points[1].circuit, clean_circuit(setup))  # the noise did act
    assert all(torch.equal(before[k], v) for k, v in adapter.model.state_dict().items())


def test_weight_noise_restores_the_weights_even_when_the_forward_fails(setup, monkeypatch) -> None:
    adapter, _, sites, batches, stats, kept = setup
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(stress, "ablated_logit_diffs", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        stress.weight_noise(adapter, sites, batches, stats, kept, seed=0, order=node_order(adapter, sites))
    assert all(torch.equal(before[k], v) for k, v in adapter.model.state_dict().items())


def test_distractor_levels_are_line_counts(setup) -> None:
    adapter, task, sites, _, stats, kept = setup
    points = stress.distractors(adapter, task, sites, stats, kept, n=16, seed=0, batch_size=8, levels=(1, 3))
    assert [p.level for p in points] == [DISTRACTOR_LEVELS[0], DISTRACTOR_LEVELS[2]]
    assert all(len(p.model) == len(p.circuit) == 16 for p in points)
