"""An exploratory follow-up to search_init.py (docs/metrics.md, "An EAP-IG-initialized search"): on the tasks where
an EAP-IG-started restart found a far smaller circuit than any of the default's five, is that the start or the number
of restarts? Twenty restarts of each start (constant, 200 steps; EAP-IG ranks, 100 steps) on the dense model: every
restart's size and the test sufficiency of the smallest. A diagnostic for the next scores version, decides nothing.

    python experiments/search_restarts.py --model zoo:dense --out search_restarts.json
"""

from __future__ import annotations

import argparse
import json

from search_budget import jaccard

from search_init import SearchBench

from fracbench.circuits import SearchSettings
from fracbench.circuits.search import DEFAULT_STEPS
from fracbench.evaluate.coherence import SEARCH_BATCH
from fracbench.models import resolve_model
from fracbench.results import smallest_restart
from fracbench.tasks import TASKS

STARTS = (("constant", DEFAULT_STEPS), ("eap-ig", 100))
RESTARTS = 20


def measure(adapter, task, n: int, seed: int) -> dict:
    bench = SearchBench.build(adapter, task, n, seed)
    rows, smallest = {}, {}
    for initial, steps in STARTS:
        found = bench.searched(adapter, SearchSettings(steps=steps, seed=seed, restarts=RESTARTS, initial=initial))
        best = smallest[initial] = found[smallest_restart([c.n_kept for c in found])]
        rows[f"{initial} {steps}x{SEARCH_BATCH}"] = {"sizes": [c.n_kept for c in found], "smallest": best.n_kept,
                                                     "test_sufficiency": bench.test_sufficiency(adapter, best.kept)}
    rows["jaccard_of_the_smallest"] = jaccard(smallest["constant"].kept, smallest["eap-ig"].kept)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:dense")
    parser.add_argument("--tasks", nargs="+", default=["string_list_depth", "copy_name"])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="search_restarts.json")
    args = parser.parse_args()
    adapter = resolve_model(args.model).load("cpu")
    out = {}
    for name in args.tasks:
        out[name] = measure(adapter, TASKS[name], args.n, args.seed)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
        print(name, json.dumps(out[name]), flush=True)


if __name__ == "__main__":
    main()
