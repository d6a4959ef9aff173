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


@pytest.mark.parametrize("model, task", [("dense", "bracket_depth"), ("sparse", "dict_or_list")])
def test_a_permuted_twin_gets_the_same_d_c_and_verdict(model: str, task: str) -> None:
    """Scores v2 gave the permuted dense model 393 instead of 420 nodes and C 0.560 instead of 0.572 on bracket_depth."""
    original = load_model(f"zoo:{model}")
    scored = {}
    for adapter in (original, permuted_twin(original, seed=11)):
        result, _ = measure_task(adapter, get_task(task), 128, 0, restarts=3)  # 3 restarts: their draws must follow the nodes too
        scored[adapter.info.name] = (result, verdict(types.SimpleNamespace(tasks={task: result}, specificity=None), task))
    (a, va), (b, vb) = scored.values()
    assert a.circuits.n_nodes == b.circuits.n_nodes and a.circuits.n_edges == b.circuits.n_edges
    assert [r.n_nodes for r in a.circuits.restarts] == [r.n_nodes for r in b.circuits.restarts]
    assert va.components["restart_jaccard"] == pytest.approx(vb.components["restart_jaccard"], abs=1e-12)
    assert va.verdict == vb.verdict
    assert va.D.value == vb.D.value
    assert va.C.value == pytest.approx(vb.C.value, abs=1e-6) and va.C.low == pytest.approx(vb.C.low, abs=1e-6)
