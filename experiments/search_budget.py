"""The measurement that decides whether a cheaper circuit search replaces the default (docs/metrics.md, "A cheaper
search"; the rule was written there before this ran).

For each task and search setting (steps, prompts per step), five restarts: every restart's size, the median restart's
test sufficiency, the median restart's node Jaccard with the default's, and the search's seconds.

    python experiments/search_budget.py --model zoo:dense --out search_budget.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from tqdm.auto import tqdm

from fracbench.circuits import PromptBatches, SearchSettings, ablated_logit_diffs, logit_diffs_under, median_restart, node_sites, node_statistics, search_circuits
from fracbench.circuits.keys import node_order
from fracbench.config import DEFAULT_RESTARTS
from fracbench.evaluate.coherence import N_SEARCH, SEARCH_BATCH
from fracbench.circuits.search import DEFAULT_STEPS
from fracbench.models import resolve_model
from fracbench.tasks import TASKS

SETTINGS = ((DEFAULT_STEPS, SEARCH_BATCH), (100, SEARCH_BATCH), (50, SEARCH_BATCH), (DEFAULT_STEPS, 32), (100, 32))  # the default first


def jaccard(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    both = sum(int((a[n] & b[n]).sum()) for n in a)
    either = sum(int((a[n] | b[n]).sum()) for n in a)
    return both / either if either else 1.0


def measure(adapter, task, n: int, seed: int) -> dict:
    sites = node_sites(adapter)
    train = task.examples("train", 2 * N_SEARCH, seed)  # as fracbench run splits them: search, then bisection
    statistics = PromptBatches.build(adapter, task, train[:N_SEARCH], SEARCH_BATCH)
    held_out = PromptBatches.build(adapter, task, train[N_SEARCH:], SEARCH_BATCH)
    test = PromptBatches.build(adapter, task, task.examples("test", n, seed), SEARCH_BATCH)
    stats = node_statistics(adapter, statistics, sites)
    order = node_order(adapter, sites, stats.means, stats.stds)
    nothing = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool) for s in sites}
    full = float(logit_diffs_under(adapter, test).mean())
    empty = float(ablated_logit_diffs(adapter, test, sites, nothing, stats.values).mean())
    rows, default = {}, None
    for steps, per_step in SETTINGS:
        search = PromptBatches.build(adapter, task, train[:N_SEARCH], per_step)
        started = time.perf_counter()
        found = search_circuits(adapter, sites, search, stats.values, SearchSettings(steps=steps, seed=seed, restarts=DEFAULT_RESTARTS),
                                held_out=held_out, order=order)
        seconds = time.perf_counter() - started
        circuit = found[median_restart(found)]
        default = default or circuit
        alone = float(ablated_logit_diffs(adapter, test, sites, circuit.kept, stats.values).mean())
        rows[f"{steps}x{per_step}"] = {
            "sizes": [c.n_kept for c in found],
            "median_size": circuit.n_kept,
            "test_sufficiency": (alone - empty) / (full - empty),
            "jaccard_with_default": jaccard(circuit.kept, default.kept),
            "seconds": seconds,  # search and bisection of all restarts
        }
    return rows


def measure_every_task(measure, description: str, default_out: str) -> None:
    """The command line of a per-task search measurement: ``measure(adapter, task, n, seed)`` on every task, the JSON
    written after each task (so an interrupted run keeps what it measured)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="zoo:dense")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=default_out)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    adapter = resolve_model(args.model).load("cpu")
    out = {}
    for name in tqdm(list(TASKS), desc="tasks"):
        out[name] = measure(adapter, TASKS[name], args.n, args.seed)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
        print(name, json.dumps(out[name]), flush=True)


def main() -> None:
    measure_every_task(measure, __doc__.splitlines()[0], "search_budget.json")


if __name__ == "__main__":
    main()
