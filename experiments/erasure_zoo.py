"""Erasure on the zoo (docs/metrics.md, "Erasure"): for every task and latent of a results file, LEACE at the
latent's best probe site against same-rank controls, on fresh test prompts.

    python experiments/erasure_zoo.py leaderboard/submissions/*.json --out erasure_zoo.json
"""

from __future__ import annotations

import argparse
import json

import torch
from tqdm.auto import tqdm

from fracbench.activations import latent_dataset
from fracbench.circuits import PromptBatches
from fracbench.evaluate.decodability import examples
from fracbench.evaluate.erasure import N_RANDOM_SUBSPACES, measure_erasure
from fracbench.models import resolve_model
from fracbench.results import read_results
from fracbench.scoring import erasure_gap, erasure_shares
from fracbench.tasks import TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="results files (fracbench run): the model and each latent's best site")
    parser.add_argument("--n-fit", type=int, default=256, help="train prompts LEACE is fitted on")
    parser.add_argument("--n-test", type=int, default=256)
    parser.add_argument("--random", type=int, default=N_RANDOM_SUBSPACES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="erasure_zoo.json")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    out: dict[str, dict] = {}
    for path in args.results:
        results = read_results(path)
        model = results.model.name
        adapter = resolve_model(model).load("cpu")
        jobs = [(task, name, latent.best_site) for task, t in results.tasks.items() if t.probes is not None
                for name, latent in t.probes.latents.items() if latent.best_site]
        for task_name, latent, site in tqdm(jobs, desc=model):
            task = TASKS[task_name]
            fit = latent_dataset(adapter, examples(task, "train", args.n_fit, args.seed), latent, [site])
            test = PromptBatches.build(adapter, task, examples(task, "test", args.n_test, args.seed))
            e = measure_erasure(adapter, task, latent, site, fit, test, args.seed, args.random)
            gap = erasure_gap(e.full.tolist(), e.section(), seed=args.seed)  # None: no behaviour to lose
            lost, controls = erasure_shares(e.full.tolist(), e.section())
            out.setdefault(model, {}).setdefault(task_name, {})[latent] = {
                "site": site, "rank": e.rank, "model_logit_diff": float(e.full.mean()),
                "model_accuracy": float((e.full > 0).double().mean()), "erased_accuracy": float((e.erased > 0).double().mean()),
                "lost_share": lost, "control_lost_shares": controls,
                "gap": None if gap is None else gap.value, "gap_low": None if gap is None else gap.low,
                "gap_high": None if gap is None else gap.high,
            }
            with open(args.out, "w") as f:
                json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
