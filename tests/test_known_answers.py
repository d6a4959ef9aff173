"""Known answers: the verdict on zoo models whose organization is known by construction.

* the shortcut model (trained where a spurious name or recency cue agrees with the answer) relies on
  its cue where the cue-flip split shows it does (set_or_string: 0.97 with the cue agreeing, 0.55
  flipped) and is not named for it where it does not (quote_close: 1.00 both ways);
* the random-init model does not decode any task, and is never flagged;
* a permuted twin (MLP neurons and heads reordered: the same function) gets the same D, C and verdict;
* the routed model (two sub-networks joined by a router on prompt length) is FRACTURED for reuse across lengths;
* the compiled model (weights set by hand) has its true circuits recovered and is coherent;
* the magnitude-pruned dense model is no more coherent than the dense model: checked on the project board's full runs
  (tests/leaderboard/test_project_board.py); at CI size (bracket_depth alone, n = 128, 2 restarts) it came out wrong
  (paired C difference, 95% low +0.02), see docs/metrics.md.

These are checks on the models the method was developed on, not validation (issue 15 holds the
held-out panel). Full runs at n = 512 are in docs/metrics.md ("Known answers (scores version 3)");
these run the same pipeline on fewer prompts and tasks, so CI checks the method still gets them.
"""

from __future__ import annotations

import types

import pytest

from fracbench.circuits import node_sites
from fracbench.circuits.keys import node_order
from fracbench.circuits.recovery import recovery
from fracbench.config import RunConfig
from fracbench.models import load_model
from fracbench.models.compiled import MIRRORS, TRUE_CIRCUITS
from fracbench.models.twins import permuted_twin
from fracbench.results import SCHEMA_VERSION, RunResult
from fracbench.evaluate import measure_task
from fracbench.runner import run
from fracbench.scoring import D_HIGH, model_scores, verdict
from fracbench.tasks import TASKS, get_task

N = 256  # test prompts per split (the default 512 train examples: probes, circuit search and bisection)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shortcut(tmp_path_factory) -> RunResult:
    out = tmp_path_factory.mktemp("known-answers")
    return run("zoo:shortcut", RunConfig(tasks=["quote_close", "set_or_string"], n_test=N, circuits=False), out, progress=False)[0]


@pytest.mark.xdist_group("shortcut")  # one worker measures the module fixture once
def test_the_shortcut_model_relies_on_its_cue_where_the_cue_flip_split_shows_it(shortcut: RunResult) -> None:
    scores = shortcut.tasks["set_or_string"].scores
    assert scores.relies_on_cue and scores.cue_reliance.low > 0.2, scores
    assert scores.reasons[0].startswith("relies on its cue"), scores.reasons


@pytest.mark.xdist_group("shortcut")  # one worker measures the module fixture once
def test_the_shortcut_model_is_not_named_for_a_cue_it_does_not_use(shortcut: RunResult) -> None:
    scores = shortcut.tasks["quote_close"].scores
    assert not scores.relies_on_cue and scores.cue_reliance.low <= 0.05, scores
    assert not any(r.startswith("relies") for r in scores.reasons)


def test_the_random_init_model_is_never_flagged_and_does_not_decode(tmp_path) -> None:
    """Its D is read above a floor its untrained twin sets, which is another random init: where that floor is high
    (set_or_string's var_type), D's interval can reach 0.5, and the verdict says so (inconclusive), never more."""
    random = run("zoo:random", RunConfig(n_test=N, circuits=False), tmp_path, progress=False)[0]
    assert set(random.tasks) == set(TASKS.names())
    for name, task in random.tasks.items():
        assert task.scores.verdict in ("does not decode", "inconclusive") and task.scores.D.low < D_HIGH, (name, task.scores)
        assert not task.scores.relies_on_cue, (name, task.scores)
    assert model_scores(random).verdict == "does not decode"


def _keys(adapter, kept: dict[str, list[int]]) -> set[tuple[str, int]]:
    """The circuit's nodes named by their keys (the same node of a permuted twin has the same key)."""
    sites = node_sites(adapter)
    order = node_order(adapter, sites)
    return {(s.name, int(order.ranks[s.name][i])) for s in sites for i in kept.get(s.name, [])}


def test_a_permuted_twin_gets_the_same_d_c_and_verdict() -> None:
    """Scores v2 drew by node index and gave the permuted dense model 393 instead of 420 nodes and C 0.560 instead of
    0.572 on bracket_depth; keyed draws alone still left the twin's float rounding to the search (sparse dict_or_list:
    a reported circuit sharing 263 of 457 nodes). Measured in canonical order, a twin is the original's weights bit for
    bit: D, C and the verdict are equal, and the circuit (in each model's own indices) is the same nodes by key.
    Measured on sparse bracket_depth, the cheapest search, at 64 test and 128 train prompts (equality holds at any size;
    the run's cost does not); sparse dict_or_list passes too (measured at 3 restarts), and
    tests/circuits/test_canonical.py checks both models' canonical weights bit for bit."""
    task = "bracket_depth"
    original = load_model("zoo:sparse")
    scored = {}
    for adapter in (original, permuted_twin(original, seed=11)):
        # 2 restarts: the choice of the reported restart too
        result, _ = measure_task(adapter, get_task(task), RunConfig(n_test=64, seed=0, n_train=128, restarts=2))
        keys = _keys(adapter, result.circuits.kept)
        scored[adapter.info.name] = (result, verdict(as_run(task, result), task), keys)
    (a, va, ka), (b, vb, kb) = scored.values()
    assert (va.D, va.C, va.verdict, va.components) == (vb.D, vb.C, vb.verdict, vb.components)
    assert ka == kb and len(ka) == a.circuits.n_nodes > 0
    assert [r.n_nodes for r in a.circuits.restarts] == [r.n_nodes for r in b.circuits.restarts]
    assert a.circuits.kept != b.circuits.kept  # the same nodes by key, at other indices: the twin really moved them


def as_run(task: str, result) -> types.SimpleNamespace:
    """One task's result as scoring reads a run of it: a document of the schema fracbench writes now."""
    return types.SimpleNamespace(tasks={task: result}, specificity=None, since=lambda version: int(SCHEMA_VERSION) >= version)


def _scored(model: str, task: str, restarts: int = 2):
    """One task measured as `fracbench run` measures it, at CI size (128 test prompts, 256 train prompts), and its verdict."""
    result, _ = measure_task(load_model(model), get_task(task), RunConfig(n_test=128, seed=0, n_train=256, restarts=restarts))
    return result, verdict(as_run(task, result), task)


def test_the_routed_model_is_fractured_for_reuse_across_prompt_lengths() -> None:
    """Short prompts reach the answer through one sub-network and long ones through the other: each length regime's
    circuit is no better than random node sets on the other regime's prompts."""
    result, v = _scored("zoo:routed", "quote_close")
    short, long = result.circuits.regimes.circuits["short"], result.circuits.regimes.circuits["long"]
    assert short.test is not None and long.test is not None  # both regimes show behaviour: the model does the task in both
    assert v.components["reuse_length"] < 0.2 and v.components["jaccard_length"] < 0.2, v.components
    assert v.verdict == "FRACTURED" and any(r.startswith("reuse") for r in v.reasons), (v.verdict, v.reasons)


@pytest.mark.parametrize("task", sorted(TRUE_CIRCUITS))
def test_the_compiled_model_s_circuits_are_recovered_and_coherent(task: str) -> None:
    """Scores version 5's expectation (docs/metrics.md, "Known answers of scores version 5"): the reported circuit keeps
    every true node with precision at least 0.5 and C's interval lies above 0.5; bracket_depth is coherent. quote_close's
    verdict is not pinned: the compiled model computes no inside_string, so D sits at D_high, and the full-size run
    read that as "coherent" where the expectation says "does not decode" or "inconclusive" (a wrong answer, reported).
    At CI size (2 restarts) every restart finds the true circuit; at full size 3 of 5 bracket_depth restarts did not."""
    result, v = _scored("zoo:compiled", task)
    for restart in result.circuits.restarts:
        found = recovery(restart.kept, TRUE_CIRCUITS[task], MIRRORS[task])
        assert found.recall == 1.0 and found.precision >= 0.5, (restart.kept, found)
    sizes = [r.n_nodes for r in result.circuits.restarts]
    assert result.circuits.reported == sizes.index(min(sizes))  # the smallest restart is reported
    assert v.C is not None and v.C.low > 0.5, (v.C, v.components)
    if task == "bracket_depth":
        assert v.verdict == "coherent", (v.C, v.components, v.reasons)
