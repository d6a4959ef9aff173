"""Circuit search on real zoo models: the circuit it finds does the task, beats random node sets of
its size, is reproducible, and is not searched for where there is no behaviour to explain."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import PromptBatches, SearchSettings, measure_conditions, median_restart, node_sites, node_statistics, search_circuit, search_circuits
from fracbench.circuits.canonical import canonical_order
from fracbench.circuits.edges import count_edges, edge_slots
from fracbench.circuits.keys import node_order
from fracbench.models.twins import permuted_twin
from fracbench.models import zoo
from fracbench.tasks import get_task

STEPS, N = 150, 128


@pytest.fixture(scope="module")
def dense_bracket():
    adapter, task = zoo.load("dense"), get_task("bracket_depth")
    sites = node_sites(adapter)
    search = PromptBatches.build(adapter, task, task.examples("train", N, 0), 64)
    stats = node_statistics(adapter, search, sites)
    circuit = search_circuit(adapter, sites, search, stats.means, SearchSettings(steps=STEPS, seed=0))
    test = PromptBatches.build(adapter, task, task.examples("test", N, 0), 64)
    return adapter, sites, search, stats, circuit, test


def test_the_circuit_reaches_its_target_with_a_fraction_of_the_nodes(dense_bracket) -> None:
    adapter, sites, _, stats, circuit, test = dense_bracket
    assert circuit.search_sufficiency >= circuit.target
    assert circuit.fraction < 0.5, circuit.n_kept
    held_out = measure_conditions(adapter, sites, test, stats.means, circuit.kept)
    assert held_out.sufficiency > 0.7 and held_out.necessity > 0.9, (held_out.sufficiency, held_out.necessity)


def test_random_node_sets_of_the_same_size_do_not_do_the_task(dense_bracket) -> None:
    adapter, sites, _, stats, circuit, test = dense_bracket
    found = measure_conditions(adapter, sites, test, stats.means, circuit.kept).sufficiency
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        flat = torch.zeros(sum(s.n_nodes for s in sites), dtype=torch.bool)
        flat[torch.randperm(len(flat), generator=g)[: circuit.n_kept]] = True
        kept = dict(zip([s.name for s in sites], flat.split([s.n_nodes for s in sites])))
        assert measure_conditions(adapter, sites, test, stats.means, kept).sufficiency < found - 0.3


def test_a_permuted_twin_in_canonical_order_gets_the_same_circuit_on_the_moved_nodes(dense_bracket) -> None:
    """Reordering neurons and heads does not change the function, so it must not change the circuit. Searched as it is,
    a twin's float rounding moves a few nodes (1-6 measured, more on the sparse model); measured in canonical order,
    the twin is the same weights, and the circuit, named in each model's own indices, is the same nodes exactly."""
    adapter, sites, _, _, _, _ = dense_bracket
    task = get_task("bracket_depth")
    found = {}
    for model in (adapter, permuted_twin(adapter, seed=5)):
        canonical = canonical_order(model)
        search = PromptBatches.build(canonical.adapter, task, task.examples("train", N, 0), 64)
        circuit = search_circuit(canonical.adapter, sites, search, node_statistics(canonical.adapter, search, sites).means,
                                 SearchSettings(steps=STEPS, seed=0))
        kept = canonical.user_indices({name: k.nonzero().squeeze(1).tolist() for name, k in circuit.kept.items()})
        order = node_order(model, sites)
        found[model.info.name] = (circuit, {(site, int(order.ranks[site][i])) for site, idx in kept.items() for i in idx})
    (a, keys_a), (b, keys_b) = found.values()
    assert all(torch.equal(a.kept[n], b.kept[n]) and torch.equal(a.scores[n], b.scores[n]) for n in a.kept)
    assert keys_a == keys_b and len(keys_a) == a.n_kept > 0


def test_the_same_seed_finds_the_same_circuit(dense_bracket) -> None:
    adapter, sites, search, stats, circuit, _ = dense_bracket
    again = search_circuit(adapter, sites, search, stats.means, SearchSettings(steps=STEPS, seed=0))
    assert all(torch.equal(circuit.kept[n], again.kept[n]) for n in circuit.kept)


def test_restarts_share_the_forward_pass_yet_are_searched_apart(dense_bracket) -> None:
    """Every restart learns on the whole batch, stacked once per restart into one forward pass, and is bisected alone:
    each reaches the target, and they are different searches (their own initial noise). That the same seed gives the
    same restarts is checked on whole runs (tests/test_resume.py, the permuted-twin known answer)."""
    adapter, sites, search, stats, _, _ = dense_bracket
    found = search_circuits(adapter, sites, search, stats.means, SearchSettings(steps=STEPS, seed=0, restarts=3))
    assert len(found) == 3 and all(c.search_sufficiency >= c.target for c in found)
    assert any(not torch.equal(found[0].scores[n], found[1].scores[n]) for n in found[0].scores)  # not one search thrice
    sizes = [c.n_kept for c in found]
    assert found[median_restart(found)].n_kept == sorted(sizes)[1], sizes
    with pytest.raises(ValueError, match="restarts must be >= 1"):
        SearchSettings(restarts=0)


def test_the_median_restart_is_the_middle_size_with_ties_to_the_first() -> None:
    class Found:
        def __init__(self, n: int) -> None:
            self.n_kept = n

    assert median_restart([Found(n) for n in (50, 10, 30, 20, 40)]) == 2
    assert median_restart([Found(n) for n in (10, 20, 20, 30)]) == 1  # the lower median of an even count
    assert median_restart([Found(5)]) == 0


def test_edges_are_nonzero_weights_between_kept_nodes(dense_bracket) -> None:
    adapter, sites, _, _, circuit, _ = dense_bracket
    everything = {s.name: torch.ones(s.n_nodes, dtype=torch.bool) for s in sites}
    nothing = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool) for s in sites}
    slots = edge_slots(adapter)
    assert count_edges(adapter, everything) == slots == 3 * (4 * 96 * 96 + 2 * 96 * 384)  # dense: every weight is an edge
    assert count_edges(adapter, nothing) == 0
    assert 0 < count_edges(adapter, circuit.kept) < slots
    for link in adapter.weight_links():
        shapes = {s.name: s.n_nodes for s in sites}
        assert tuple(link.weight.shape) == (shapes[link.out_site], shapes[link.in_site]), link.name


def test_no_search_runs_where_the_model_shows_no_behaviour() -> None:
    """The random-init model's logit differences are no larger than with every node ablated: a
    circuit "found" there would explain nothing (Break It Down), so none is searched for."""
    adapter, task = zoo.load("random"), get_task("bracket_depth")
    sites = node_sites(adapter)
    search = PromptBatches.build(adapter, task, task.examples("train", 64, 0), 64)
    circuit = search_circuit(adapter, sites, search, node_statistics(adapter, search, sites).means, SearchSettings(steps=STEPS))
    assert circuit.search_sufficiency is None and circuit.n_kept == 0


def test_bad_targets_and_steps_are_refused(dense_bracket) -> None:
    adapter, sites, search, stats, _, _ = dense_bracket
    with pytest.raises(ValueError, match=r"target .* must be in \(0, 1\]"):
        search_circuit(adapter, sites, search, stats.means, SearchSettings(target=1.5))
    with pytest.raises(ValueError, match="steps must be >= 0"):
        search_circuit(adapter, sites, search, stats.means, SearchSettings(steps=-1))


def test_bisection_on_held_out_prompts_meets_the_target_there(dense_bracket) -> None:
    adapter, sites, search, stats, _, _ = dense_bracket
    task = get_task("bracket_depth")
    held_out = PromptBatches.build(adapter, task, task.examples("train", 2 * N, 0)[N:], 64)
    circuit = search_circuit(adapter, sites, search, stats.means, SearchSettings(steps=STEPS, seed=0), held_out=held_out)
    there = measure_conditions(adapter, sites, held_out, stats.means, circuit.kept).sufficiency
    assert there == pytest.approx(circuit.search_sufficiency, abs=1e-6) and there >= circuit.target


def test_node_keys_do_not_see_the_sign_of_zero_weights(tiny_adapter) -> None:
    """A weight-sparse model's zeros are 0.0 and -0.0; sorted, they keep their input order, so hashing their bytes
    gave a permuted sparse twin other keys than the original's (its circuit then moved by 300+ nodes)."""
    import copy

    from fracbench.circuits.keys import weight_digests
    from fracbench.models.native import NativeAdapter

    model = copy.deepcopy(tiny_adapter.model)
    with torch.no_grad():
        for w in model.weight_matrices():
            w.mul_((torch.rand(w.shape, generator=torch.Generator().manual_seed(0)) < 0.75).float())  # -0.0 where w < 0
    sparse = NativeAdapter(model, "sparse tiny")
    sites = node_sites(sparse)
    assert {s: sorted(k) for s, k in weight_digests(sparse, sites).items()} == \
           {s: sorted(k) for s, k in weight_digests(permuted_twin(sparse, seed=2), sites).items()}
