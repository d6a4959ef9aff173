"""The circuit search on a zoo model: learned node masks, then bisection on held-out prompts (what `fracbench run`
does per task, 200 steps), against the same bisection over the masks' initial, unlearned ranking (0 steps): what
the learned masks buy in circuit size, and what they cost in time.

Run: ``python -m pytest benchmarks/test_circuit_search.py --benchmark-only -s``. The nodes kept, their share of
the model and the held-out sufficiency go to extra_info with the time; nothing here asserts a time.
"""

from __future__ import annotations

import pytest

from fracbench.circuits import PromptBatches, SearchSettings, median_restart, node_sites, node_statistics, search_circuit, search_circuits
from fracbench.evaluate.coherence import SEARCH_BATCH
from fracbench.models import load_model
from fracbench.tasks import get_task

N_SEARCH = 256


@pytest.fixture(scope="module")
def setting():
    adapter = load_model("zoo:dense")
    task = get_task("bracket_depth")
    train = task.examples("train", 2 * N_SEARCH, 0)
    sites = node_sites(adapter)
    search = PromptBatches.build(adapter, task, train[:N_SEARCH], SEARCH_BATCH)
    held_out = PromptBatches.build(adapter, task, train[N_SEARCH:], 64)
    return adapter, sites, search, held_out, node_statistics(adapter, search, sites)


@pytest.mark.parametrize("steps", [0, 200])  # 0: the bisection alone over the initial (random) ranking
def test_circuit_search(benchmark, setting, steps: int) -> None:
    adapter, sites, search, held_out, stats = setting
    circuit = benchmark.pedantic(lambda: search_circuit(adapter, sites, search, stats.means, SearchSettings(steps=steps, seed=0), held_out=held_out),
                                 rounds=1, iterations=1)
    benchmark.extra_info.update(nodes_kept=circuit.n_kept, fraction_of_nodes=round(circuit.fraction, 4),
                                held_out_sufficiency=circuit.search_sufficiency, steps=steps)
    print(f"\nsteps {steps}: {circuit.n_kept} of {circuit.n_total} nodes ({circuit.fraction:.1%}), "
          f"held-out sufficiency {circuit.search_sufficiency:.3f}, {benchmark.stats.stats.min:.1f} s")


RESTART_TIMES: dict[int, float] = {}


@pytest.mark.parametrize("restarts", [1, 5])  # fracbench run's default is 5: what the restarts cost against one search
def test_circuit_search_restarts(benchmark, setting, restarts: int) -> None:
    adapter, sites, search, held_out, stats = setting
    found = benchmark.pedantic(lambda: search_circuits(adapter, sites, search, stats.means, SearchSettings(seed=0, restarts=restarts), held_out=held_out),
                               rounds=1, iterations=1)
    RESTART_TIMES[restarts] = benchmark.stats.stats.min
    sizes = [c.n_kept for c in found]
    benchmark.extra_info.update(restarts=restarts, nodes_kept=sizes, reported=sizes[median_restart(found)],
                                ratio_to_one_search=RESTART_TIMES[restarts] / RESTART_TIMES.get(1, float("nan")))
    print(f"\n{restarts} restart(s): nodes {sizes}, {RESTART_TIMES[restarts]:.1f} s "
          f"({RESTART_TIMES[restarts] / RESTART_TIMES.get(1, float('nan')):.2f}x one search)")
