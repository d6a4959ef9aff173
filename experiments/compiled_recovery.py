"""The compiled model's known answer: does the circuit search recover the circuits set by hand?

Runs the search as `fracbench run` does (the model in canonical order, the first 256 train prompts for the means and
the masks, the next 256 for the bisection, 5 restarts, seed 0) on each task with a true circuit
(`fracbench.models.compiled.TRUE_CIRCUITS`) and prints, per restart and for the reported (median) one, the nodes kept,
precision, recall and the AUROC of the learned scores against the truth (`fracbench.circuits.recovery`; LayerNorm's
mirror channels counted neither way). Writes experiments/results/compiled_recovery.json.

    python experiments/compiled_recovery.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fracbench.circuits import PromptBatches, SearchSettings, median_restart, node_sites, node_statistics, search_circuits
from fracbench.circuits.canonical import canonical_order
from fracbench.circuits.keys import node_order
from fracbench.circuits.recovery import recovery
from fracbench.config import DEFAULT_RESTARTS
from fracbench.evaluate.coherence import N_SEARCH, SEARCH_BATCH
from fracbench.models import load_model
from fracbench.models.compiled import MIRRORS, TRUE_CIRCUITS
from fracbench.tasks import get_task

OUT = Path(__file__).parent / "results" / "compiled_recovery.json"


def user_scores(canonical, scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Learned scores of the canonical model's nodes, indexed as the user's model numbers them."""
    out = {}
    for site, values in scores.items():
        moved = canonical.original.get(site)
        if moved is None:
            out[site] = values
        else:
            user = torch.empty_like(values)
            user[torch.as_tensor(moved)] = values
            out[site] = user
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    canonical = canonical_order(load_model("zoo:compiled"))
    adapter = canonical.adapter
    sites = node_sites(adapter)
    report = {}
    for name, truth in TRUE_CIRCUITS.items():
        task = get_task(name)
        train = task.examples("train", 2 * N_SEARCH, args.seed)
        search = PromptBatches.build(adapter, task, train[:N_SEARCH], SEARCH_BATCH)
        held_out = PromptBatches.build(adapter, task, train[N_SEARCH:], 128)
        stats = node_statistics(adapter, search, sites)
        order = node_order(adapter, sites, stats.means, stats.stds)
        found = search_circuits(adapter, sites, search, stats.values, SearchSettings(seed=args.seed, restarts=args.restarts),
                                held_out=held_out, order=order)
        rows = []
        for circuit in found:
            kept = canonical.user_indices({s: k.nonzero().squeeze(1).tolist() for s, k in circuit.kept.items() if bool(k.any())})
            r = recovery(kept, truth, MIRRORS.get(name), user_scores(canonical, circuit.scores), sites)
            rows.append({"n_nodes": circuit.n_kept, "search_sufficiency": circuit.search_sufficiency, "precision": r.precision,
                         "recall": r.recall, "auroc": r.auroc, "kept": kept})
        reported = median_restart(found)
        report[name] = {"true_nodes": sum(map(len, truth.values())), "reported": reported, "restarts": rows}
        for i, row in enumerate(rows):
            mark = " (reported)" if i == reported else ""
            print(f"{name} restart {i}{mark}: {row['n_nodes']} nodes, precision {row['precision']:.2f}, recall {row['recall']:.2f}, "
                  f"AUROC {row['auroc']:.3f}; kept {row['kept']}", flush=True)
    OUT.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
