"""Known answers: the verdict on zoo models whose organization is known by construction.

* the shortcut model (trained where a spurious name or recency cue agrees with the answer) decodes
  the latents in distribution but is FRACTURED on the tasks where it took the cue, with OOD
  robustness the weakest component;
* the weight-sparse model is more coherent than its dense twin (same recipe, dense weights);
* the random-init model does not decode: its probes read no more than its untrained twin's.

Full runs at n = 512 over every task and three seeds are in docs/metrics.md ("Known answers");
these run the same pipeline on fewer prompts and tasks, so CI checks the method still gets them.
"""

from __future__ import annotations

import pytest

from fracbench.results import RunResult
from fracbench.runner import run
from fracbench.scoring import D_HIGH
from fracbench.tasks import TASKS

N = 256  # test prompts per split (the default 512 train examples: probes, circuit search and bisection)
CUE_TASKS = ("quote_close", "set_or_string")  # where the shortcut model's OOD accuracy falls to chance (docs/zoo.md)
TWIN_TASKS = ("bracket_depth", "string_list_depth")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, RunResult]:
    out = tmp_path_factory.mktemp("known-answers")
    plan = {"shortcut": list(CUE_TASKS), "dense": list(TWIN_TASKS), "sparse": list(TWIN_TASKS), "random": "all"}
    return {model: run(f"zoo:{model}", tasks=tasks, out_dir=out, n_test=N, progress=False, circuits=model != "random")[0]
            for model, tasks in plan.items()}


@pytest.mark.parametrize("task", CUE_TASKS)
def test_the_shortcut_model_decodes_but_is_fractured_by_distribution_shift(runs, task: str) -> None:
    scores = runs["shortcut"].tasks[task].scores
    assert scores.D.low >= D_HIGH, scores  # decoding shown: the whole interval
    assert scores.verdict == "FRACTURED", scores
    assert scores.reasons[0].startswith("ood "), scores.reasons  # the weakest component: the cause


@pytest.mark.parametrize("task", TWIN_TASKS)
def test_the_weight_sparse_model_is_more_coherent_than_its_dense_twin(runs, task: str) -> None:
    dense, sparse = runs["dense"].tasks[task], runs["sparse"].tasks[task]
    assert dense.circuits.n_edges > 2 * sparse.circuits.n_edges, (dense.circuits.n_edges, sparse.circuits.n_edges)
    assert sparse.scores.C.value > dense.scores.C.value, (sparse.scores, dense.scores)
    assert sparse.scores.components["compactness"] > dense.scores.components["compactness"]


def test_the_random_init_model_does_not_decode_any_task(runs) -> None:
    random = runs["random"]
    assert set(random.tasks) == set(TASKS.names())
    for name, task in random.tasks.items():
        assert task.scores.verdict == "does not decode" and task.scores.D.low < D_HIGH, (name, task.scores)
