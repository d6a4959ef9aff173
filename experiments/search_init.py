"""The measurement that decides whether an EAP-IG-initialized mask search with fewer steps replaces the default
(docs/metrics.md, "An EAP-IG-initialized search"; the rule was written there before this ran).

For each task: the default search (constant initial scores, 200 steps of 64 prompts, 5 restarts) and the search started
from the nodes' EAP-IG ranks at 200, 100 and 50 steps; every restart's size, the reported (smallest) restart's size,
test sufficiency and node Jaccard with the default's reported restart, and seconds (attributions included).

    python experiments/search_init.py --model zoo:dense --out search_init.json
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from search_budget import jaccard, measure_every_task

from fracbench.circuits import PromptBatches, SearchSettings, ablated_logit_diffs, logit_diffs_under, node_sites, node_statistics, search_circuits
from fracbench.circuits.keys import node_order
from fracbench.circuits.search import DEFAULT_STEPS
from fracbench.config import DEFAULT_RESTARTS
from fracbench.evaluate.coherence import N_SEARCH, SEARCH_BATCH
from fracbench.results import smallest_restart

SETTINGS = (("constant", DEFAULT_STEPS), ("eap-ig", DEFAULT_STEPS), ("eap-ig", 100), ("eap-ig", 50))  # the default first


@dataclass
class SearchBench:
    """A task's prompts split as `fracbench run` splits them (search, then bisection), its test prompts, the search's
    ablation values and node keys, and the full and all-ablated models' mean test logit differences."""

    sites: list
    search: PromptBatches
    held_out: PromptBatches
    test: PromptBatches
    values: dict
    order: object
    full: float
    empty: float

    @classmethod
    def build(cls, adapter, task, n: int, seed: int) -> SearchBench:
        sites = node_sites(adapter)
        train = task.examples("train", 2 * N_SEARCH, seed)
        search = PromptBatches.build(adapter, task, train[:N_SEARCH], SEARCH_BATCH)
        held_out = PromptBatches.build(adapter, task, train[N_SEARCH:], SEARCH_BATCH)
        test = PromptBatches.build(adapter, task, task.examples("test", n, seed), SEARCH_BATCH)
        stats = node_statistics(adapter, search, sites)
        nothing = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool) for s in sites}
        full = float(logit_diffs_under(adapter, test).mean())
        empty = float(ablated_logit_diffs(adapter, test, sites, nothing, stats.values).mean())
        return cls(sites, search, held_out, test, stats.values, node_order(adapter, sites, stats.means, stats.stds), full, empty)

    def searched(self, adapter, settings: SearchSettings) -> list:
        return search_circuits(adapter, self.sites, self.search, self.values, settings, held_out=self.held_out, order=self.order)

    def test_sufficiency(self, adapter, kept: dict) -> float:
        alone = float(ablated_logit_diffs(adapter, self.test, self.sites, kept, self.values).mean())
        return (alone - self.empty) / (self.full - self.empty)


def measure(adapter, task, n: int, seed: int) -> dict:
    bench = SearchBench.build(adapter, task, n, seed)
    rows, default = {}, None
    for initial, steps in SETTINGS:
        started = time.perf_counter()
        found = bench.searched(adapter, SearchSettings(steps=steps, seed=seed, restarts=DEFAULT_RESTARTS, initial=initial))
        seconds = time.perf_counter() - started
        circuit = found[smallest_restart([c.n_kept for c in found])]
        default = default or circuit
        rows[f"{initial} {steps}x{SEARCH_BATCH}"] = {
            "sizes": [c.n_kept for c in found],
            "reported_size": circuit.n_kept,
            "test_sufficiency": bench.test_sufficiency(adapter, circuit.kept),
            "jaccard_with_default": jaccard(circuit.kept, default.kept),
            "seconds": seconds,  # attributions, search and bisection of all restarts
        }
    return rows


def main() -> None:
    measure_every_task(measure, __doc__.splitlines()[0], "search_init.json")


if __name__ == "__main__":
    main()
