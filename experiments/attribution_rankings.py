"""Node rankings from attribution patching (EAP, EAP-IG) against the learned masks (one search, the run's 200 steps):
each ranking's faithfulness-vs-size curve on the test prompts (the share of m(M) - m(empty) its top k nodes recover
alone, at the run's grid of sizes), summarized as MIB's CPR (area under the share over log size, higher better) and
CMD (area under |1 - share|, lower better), with a random ranking for scale, the seconds each ranking took, and on the
compiled model the AUROC of each ranking against the true circuit (nodes known by construction).

    python experiments/attribution_rankings.py [--n 256] [--out experiments/results/attribution_rankings.json]

Issue 17 asks for this comparison before a default is picked; nothing here changes what `fracbench run` does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fracbench.circuits import PromptBatches, SearchSettings, ablated_logit_diffs, logit_diffs_under, node_sites, node_statistics
from fracbench.circuits.attribution import EAP_IG_STEPS, attribution_scores
from fracbench.circuits.curves import grid_sizes, learned_ranking, random_ranking, ranking_curve
from fracbench.circuits.keys import node_order
from fracbench.circuits.nodes import total_nodes
from fracbench.circuits.recovery import recovery
from fracbench.circuits.search import learn_scores
from fracbench.evaluate.coherence import N_SEARCH, SEARCH_BATCH
from fracbench.models import load_model
from fracbench.models.compiled import MIRRORS, TRUE_CIRCUITS
from fracbench.tasks import get_task

MODELS = ("dense", "sparse", "compiled")
TASKS = ("quote_close", "bracket_depth")
OUT = Path(__file__).parent / "results" / "attribution_rankings.json"


def areas(shares: list[float], sizes: list[int]) -> tuple[float, float]:
    """CPR and CMD of one curve: trapezoid areas over log size, divided by the log range."""
    x, y = np.log(np.asarray(sizes, dtype=float)), np.asarray(shares)

    def trapezoid(values: np.ndarray) -> float:
        return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))

    return trapezoid(y), trapezoid(np.abs(1 - y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="test prompts per task (default: 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    report = {}
    for model in MODELS:
        adapter = load_model(f"zoo:{model}")
        sites = node_sites(adapter)
        sizes = grid_sizes(total_nodes(sites))
        for name in TASKS:
            task = get_task(name)
            search = PromptBatches.build(adapter, task, task.examples("train", N_SEARCH, args.seed), SEARCH_BATCH)
            test = PromptBatches.build(adapter, task, task.examples("test", args.n, args.seed), 128)
            stats = node_statistics(adapter, search, sites)
            order = node_order(adapter, sites, stats.means, stats.stds)
            full = logit_diffs_under(adapter, test)
            empty = float(ablated_logit_diffs(adapter, test, sites, {s.name: torch.zeros(s.n_nodes, dtype=torch.bool) for s in sites},
                                              stats.values).mean())
            span = float(full.mean()) - empty
            rankings, seconds = {}, {}
            for method in ("learned masks", "EAP", f"EAP-IG ({EAP_IG_STEPS} steps)"):
                started = time.perf_counter()
                if method == "learned masks":
                    scores = learn_scores(adapter, sites, search, stats.values, SearchSettings(seed=args.seed), order=order)
                    scores = scores[0] if scores is not None else None
                else:
                    scores = attribution_scores(adapter, sites, search, stats.values, steps=1 if method == "EAP" else EAP_IG_STEPS)
                seconds[method] = time.perf_counter() - started
                if scores is not None:
                    rankings[method] = (scores, learned_ranking(sites, scores, order))
            rankings["random"] = (None, random_ranking(order, args.seed, 0))
            rows = {}
            for method, (scores, ranking) in rankings.items():
                curve = ranking_curve(adapter, sites, test, stats.values, ranking, sizes, full)
                shares = [(float(c.mean()) - empty) / span for c in curve]
                cpr, cmd = areas(shares, sizes)
                row = {"cpr": cpr, "cmd": cmd, "shares": shares, "seconds": seconds.get(method)}
                if model == "compiled" and scores is not None and name in TRUE_CIRCUITS:
                    row["auroc"] = recovery({}, TRUE_CIRCUITS[name], MIRRORS.get(name), scores, sites).auroc
                rows[method] = row
                extra = f", AUROC {row['auroc']:.3f}" if row.get("auroc") is not None else ""
                took = f", {row['seconds']:.1f} s" if row["seconds"] is not None else ""
                print(f"{model} {name} {method}: CPR {cpr:.3f}, CMD {cmd:.3f}{took}{extra}", flush=True)
            report[f"{model}/{name}"] = {"span": span, "sizes": sizes, "rankings": rows}
    args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
