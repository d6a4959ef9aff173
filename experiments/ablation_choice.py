"""The measurement that chooses the default ablation (docs/metrics.md, "Ablation" and "Ablation choice").

For each task, under each ablation kind: the all-ablated model's test accuracy (how much of the answer the ablation
itself leaks) with its binomial 95% half-width, every restart's circuit size, and the median restart's test
sufficiency and CPR; under resample also how many prompts had no counterfactual. The rules that read these numbers
(positional mean, then resample) were written in docs/metrics.md before this ran.

    python experiments/ablation_choice.py --model zoo:dense --n 256 --restarts 3 --out ablation_choice.json
    python experiments/ablation_choice.py --kinds mean resample --out resample_choice.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from fracbench.circuits import PromptBatches, SearchSettings, ablated_logit_diffs, logit_diffs_under, median_restart, node_sites, node_statistics, search_circuits
from fracbench.config import ABLATIONS, RESAMPLE
from fracbench.circuits.counterfactual import counterfactual_examples
from fracbench.circuits.curves import faithfulness_curves
from fracbench.circuits.keys import node_order
from fracbench.evaluate.coherence import N_SEARCH, SEARCH_BATCH
from fracbench.models import resolve_model
from fracbench.scoring import area
from fracbench.tasks import TASKS


def measure(adapter, task, ablation: str, n: int, restarts: int, seed: int) -> dict:
    sites = node_sites(adapter)
    unmatched = {}

    def batches(split: str, examples: list) -> PromptBatches:
        if ablation != RESAMPLE:
            return PromptBatches.build(adapter, task, examples, SEARCH_BATCH)
        counterfactuals = counterfactual_examples(adapter, task, examples, split, seed)
        unmatched[split] = sum(c is None for c in counterfactuals)
        return PromptBatches.build(adapter, task, examples, SEARCH_BATCH, counterfactuals)

    train = task.examples("train", 2 * N_SEARCH, seed)  # as fracbench run splits them: search, then bisection
    search = batches("train", train[:N_SEARCH])
    held_out = batches("train", train[N_SEARCH:])
    test = batches("test", task.examples("test", n, seed))
    started = time.perf_counter()
    stats = node_statistics(adapter, search, sites, ablation)
    order = node_order(adapter, sites, stats.means, stats.stds)
    nothing = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool) for s in sites}
    full = logit_diffs_under(adapter, test).double()
    empty = ablated_logit_diffs(adapter, test, sites, nothing, stats.values)
    accuracy = float((empty > 0).double().mean())
    found = search_circuits(adapter, sites, search, stats.values, SearchSettings(seed=seed, restarts=restarts), held_out=held_out, order=order)
    circuit = found[median_restart(found)]
    alone = ablated_logit_diffs(adapter, test, sites, circuit.kept, stats.values)
    span = float(full.mean() - empty.mean())
    curves = faithfulness_curves(adapter, sites, test, stats.values, circuit.scores, order, circuit.n_kept, seed, full=full)
    fractions = [np.array([(float(row.double().mean()) - float(empty.mean())) / span]) for row in curves.learned]
    cpr = float(area(fractions, np.log(np.asarray(curves.sizes, dtype=float)))[0])  # scoring's CPR, point estimate
    return {
        "empty_accuracy": accuracy,
        "empty_half_width": 1.96 * math.sqrt(accuracy * (1 - accuracy) / n),
        "model_accuracy": float((full > 0).double().mean()),
        "sizes": [c.n_kept for c in found],
        "median_size": circuit.n_kept,
        "test_sufficiency": (float(alone.mean()) - float(empty.mean())) / span,
        "cpr": cpr,
        "seconds": time.perf_counter() - started,  # statistics, search, bisection, test and curves
        "unmatched": unmatched,  # resample: prompts per split without a counterfactual (pooled mean)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:dense")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="ablation_choice.json")
    parser.add_argument("--kinds", nargs="+", default=list(ABLATIONS), choices=[*ABLATIONS, RESAMPLE])
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    adapter = resolve_model(args.model).load("cpu")
    rows = {}
    for name in tqdm(list(TASKS), desc="tasks"):
        rows[name] = {kind: measure(adapter, TASKS[name], kind, args.n, args.restarts, args.seed) for kind in args.kinds}
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
        print(name, json.dumps(rows[name]), flush=True)


if __name__ == "__main__":
    main()
