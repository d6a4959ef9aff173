"""Known answers: the verdict on zoo models whose organization is known by construction.

* the shortcut model (trained where a spurious name or recency cue agrees with the answer) relies on
  its cue where the cue-flip split shows it does (set_or_string: 0.97 with the cue agreeing, 0.55
  flipped) and is not named for it where it does not (quote_close: 1.00 both ways);
* the random-init model does not decode any task, and is never flagged;
* a permuted twin (MLP neurons and heads reordered: the same function) gets the same D, C and verdict.

These are checks on the models the method was developed on, not validation (issue 15 holds the
held-out panel). Full runs at n = 512 are in docs/metrics.md ("Known answers (scores version 3)");
these run the same pipeline on fewer prompts and tasks, so CI checks the method still gets them.
"""

from __future__ import annotations

import types

import pytest

from fracbench.circuits import node_sites
from fracbench.circuits.keys import node_order
from fracbench.models import load_model
from fracbench.models.twins import permuted_twin
from fracbench.results import RunResult
from fracbench.runner import measure_task, run
from fracbench.scoring import D_HIGH, model_scores, verdict
from fracbench.tasks import TASKS, get_task

N = 256  # test prompts per split (the default 512 train examples: probes, circuit search and bisection)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shortcut(tmp_path_factory) -> RunResult:
    out = tmp_path_factory.mktemp("known-answers")
    return run("zoo:shortcut", tasks=["quote_close", "set_or_string"], out_dir=out, n_test=N, progress=False, circuits=False)[0]


def test_the_shortcut_model_relies_on_its_cue_where_the_cue_flip_split_shows_it(shortcut: RunResult) -> None:
    scores = shortcut.tasks["set_or_string"].scores
    assert scores.relies_on_cue and scores.cue_reliance.low > 0.2, scores
    assert scores.reasons[0].startswith("relies on its cue"), scores.reasons


def test_the_shortcut_model_is_not_named_for_a_cue_it_does_not_use(shortcut: RunResult) -> None:
    scores = shortcut.tasks["quote_close"].scores
    assert not scores.relies_on_cue and scores.cue_reliance.low <= 0.05, scores
    assert not any(r.startswith("relies") for r in scores.reasons)


def test_the_random_init_model_is_never_flagged_and_does_not_decode(tmp_path) -> None:
    """Its D is read above a floor its untrained twin sets, which is another random init: where that floor is high
    (set_or_string's var_type), D's interval can reach 0.5, and the verdict says so (inconclusive), never more."""
    random = run("zoo:random", out_dir=tmp_path, n_test=N, progress=False, circuits=False)[0]
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


@pytest.mark.parametrize("model, task", [("dense", "bracket_depth"), ("sparse", "dict_or_list")])
def test_a_permuted_twin_gets_the_same_d_c_and_verdict(model: str, task: str) -> None:
    """Scores v2 drew by node index and gave the permuted dense model 393 instead of 420 nodes and C 0.560 instead of
    0.572 on bracket_depth. Now every draw follows the nodes' keys: D is equal and so is the verdict; the circuits are
    the same nodes up to float rounding (the twin's logits differ by up to 3e-5, which can move a node whose learned
    score ends within rounding of 0, or the bisection by a step: measured 1-5 nodes, C within 0.007)."""
    original = load_model(f"zoo:{model}")
    scored = {}
    for adapter in (original, permuted_twin(original, seed=11)):
        result, _ = measure_task(adapter, get_task(task), 128, 0, n_train=256, restarts=3)  # 3 restarts: their draws follow the nodes too
        keys = _keys(adapter, result.circuits.kept)
        scored[adapter.info.name] = (result, verdict(types.SimpleNamespace(tasks={task: result}, specificity=None), task), keys)
    (a, va, ka), (b, vb, kb) = scored.values()
    assert va.D.value == vb.D.value and va.verdict == vb.verdict
    assert len(ka & kb) / len(ka | kb) >= 0.98, (a.circuits.n_nodes, b.circuits.n_nodes)
    for x, y in zip(a.circuits.restarts, b.circuits.restarts, strict=True):
        assert abs(x.n_nodes - y.n_nodes) <= max(3, 0.02 * x.n_nodes), (x.n_nodes, y.n_nodes)
    for bound in ("value", "low", "high"):
        assert getattr(va.C, bound) == pytest.approx(getattr(vb.C, bound), abs=0.02), (va.C, vb.C)
