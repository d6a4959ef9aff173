"""Attribution patching (EAP, EAP-IG): the gradient of the logit difference in each node's mask, checked against the
logit differences the ablation itself gives."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import (PromptBatches, SearchSettings, ablated_logit_diffs, logit_diffs_under, node_sites, node_statistics,
                                search_circuits)
from fracbench.circuits.attribution import attribution_scores
from fracbench.circuits.recovery import recovery
from fracbench.models import load_model
from fracbench.models.compiled import MIRRORS, TRUE_CIRCUITS
from fracbench.tasks import get_task


@pytest.fixture(scope="module")
def setting(tiny_adapter):
    task = get_task("bracket_depth")
    sites = node_sites(tiny_adapter)
    batches = PromptBatches.build(tiny_adapter, task, task.examples("train", 8, 0), 4)
    return tiny_adapter, sites, batches, node_statistics(tiny_adapter, batches, sites).values


def mean_under(setting, keep) -> float:
    adapter, sites, batches, values = setting
    return float(ablated_logit_diffs(adapter, batches, sites, keep, values).mean())


def test_eap_is_the_derivative_of_the_mean_logit_difference_in_a_node_s_mask(setting) -> None:
    adapter, sites, batches, values = setting
    scores = attribution_scores(adapter, sites, batches, values)
    assert {name: s.shape for name, s in scores.items()} == {s.name: (s.n_nodes,) for s in sites}
    name, i = max(((s.name, int(scores[s.name].abs().argmax())) for s in sites), key=lambda p: abs(float(scores[p[0]][p[1]])))
    eps = 0.05  # a central difference: its error is O(eps^2), the float32 model's noise O(1e-7 / eps)
    moved = {}
    for sign in (1, -1):
        keep = {s.name: torch.ones(s.n_nodes) for s in sites}
        keep[name][i] = 1 + sign * eps
        moved[sign] = mean_under(setting, keep)
    assert float(scores[name][i]) == pytest.approx((moved[1] - moved[-1]) / (2 * eps), rel=1e-3)


def test_eap_ig_scores_add_up_to_the_full_minus_the_all_ablated_model(setting) -> None:
    """Completeness of integrated gradients along the masks' path, up to the midpoint rule's error, which falls with
    the number of steps."""
    adapter, sites, batches, values = setting
    span = float(logit_diffs_under(adapter, batches).mean()) - mean_under(setting, {s.name: torch.zeros(s.n_nodes, dtype=torch.bool)
                                                                                    for s in sites})
    gap = {steps: abs(sum(float(s.sum()) for s in attribution_scores(adapter, sites, batches, values, steps=steps).values()) - span)
           for steps in (2, 16)}
    assert gap[16] < 0.01 * abs(span) and gap[16] < gap[2], (span, gap)


def test_attribution_refuses_a_path_without_points(setting) -> None:
    adapter, sites, batches, values = setting
    with pytest.raises(ValueError, match="steps .* must be >= 1, got 0"):
        attribution_scores(adapter, sites, batches, values, steps=0)


@pytest.mark.parametrize("task", sorted(TRUE_CIRCUITS))
def test_eap_ig_as_the_search_s_ranking_cuts_the_compiled_model_s_true_circuit(task: str) -> None:
    """``SearchSettings(ranking="eap-ig")`` (``fracbench run --ranking eap-ig``): one deterministic ranking, bisected to
    the target like the learned masks; on the compiled model the true nodes rank first (AUROC 1.000 in
    experiments/attribution_rankings.py), so the circuit holds every one of them and little else."""
    adapter, spec = load_model("zoo:compiled"), get_task(task)
    sites = node_sites(adapter)
    train = spec.examples("train", 128, 0)
    search = PromptBatches.build(adapter, spec, train[:64], 64)
    held_out = PromptBatches.build(adapter, spec, train[64:], 64)
    values = node_statistics(adapter, search, sites).values
    (circuit,) = search_circuits(adapter, sites, search, values, SearchSettings(ranking="eap-ig"), held_out=held_out)
    kept = {name: k.nonzero().squeeze(1).tolist() for name, k in circuit.kept.items()}
    found = recovery(kept, TRUE_CIRCUITS[task], MIRRORS[task])
    assert circuit.search_sufficiency >= 0.9 and found.recall == 1.0 and found.precision >= 0.5, (circuit.n_kept, found)
    assert circuit.scores.keys() == {s.name for s in sites}  # the attributions are the ranking the bisection cut


def test_eap_ig_is_one_ranking() -> None:
    with pytest.raises(ValueError, match="ranking eap-ig is deterministic"):
        SearchSettings(ranking="eap-ig", restarts=5)
    with pytest.raises(ValueError, match="ranking \\(--ranking\\) must be one of 'masks', 'eap-ig'"):
        SearchSettings(ranking="eap")
