"""Stress curves: seeded, exact at zero strength, and the model is left as it was found."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import PromptBatches, ablation_interventions, logit_diffs_under, node_sites, node_statistics
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


def clean_circuit(setup) -> torch.Tensor:
    adapter, _, sites, batches, stats, kept = setup
    return logit_diffs_under(adapter, batches, ablation_interventions(sites, kept, stats.means))


def test_zero_noise_and_zero_dropout_are_the_clean_circuit_and_model(setup) -> None:
    adapter, _, sites, batches, stats, kept = setup
    noise = stress.activation_noise(adapter, sites, batches, stats, kept, seed=0, sigmas=(0.0,))[0]
    drop = stress.dropout(adapter, sites, batches, stats, kept, seed=0, fractions=(0.0,))[0]
    assert torch.allclose(noise.circuit, clean_circuit(setup)) and torch.allclose(drop.circuit, clean_circuit(setup))
    assert torch.allclose(noise.model, logit_diffs_under(adapter, batches)) and torch.equal(drop.model, logit_diffs_under(adapter, batches))


def test_noise_is_seeded(setup) -> None:
    adapter, _, sites, batches, stats, kept = setup
    a, b, c = (stress.activation_noise(adapter, sites, batches, stats, kept, seed=s, sigmas=(1.0,))[0] for s in (0, 0, 1))
    assert torch.equal(a.circuit, b.circuit) and not torch.equal(a.circuit, c.circuit)


def test_weight_noise_leaves_the_weights_as_they_were(setup) -> None:
    adapter, _, sites, batches, stats, kept = setup
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    points = stress.weight_noise(adapter, sites, batches, stats, kept, seed=0, sigmas=(0.5, 2.0))
    assert not torch.equal(points[1].circuit, clean_circuit(setup))  # the noise did act
    assert all(torch.equal(before[k], v) for k, v in adapter.model.state_dict().items())


def test_weight_noise_restores_the_weights_even_when_the_forward_fails(setup, monkeypatch) -> None:
    adapter, _, sites, batches, stats, kept = setup
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(stress, "logit_diffs_under", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        stress.weight_noise(adapter, sites, batches, stats, kept, seed=0)
    assert all(torch.equal(before[k], v) for k, v in adapter.model.state_dict().items())


def test_distractor_levels_are_line_counts(setup) -> None:
    adapter, task, sites, _, stats, kept = setup
    points = stress.distractors(adapter, task, sites, stats, kept, n=16, seed=0, batch_size=8, levels=(1, 3))
    assert [p.level for p in points] == [DISTRACTOR_LEVELS[0], DISTRACTOR_LEVELS[2]]
    assert all(len(p.model) == len(p.circuit) == 16 for p in points)
