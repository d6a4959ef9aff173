"""The board rerun at schema 13 against what version 6 predicted from the version-5 runs: per model and task, the
verdict experiments/rescore_v6.py read off the stored version-5 numbers (the prediction, committed before the rerun)
and the verdict of the rerun (the same models, code and settings, measured again), with the interval that decided
each, and whether they agree; then the model-level verdicts.

    python experiments/rerun_v6.py leaderboard/submissions/*.json.xz [--predicted experiments/results/rescore_v6.json]

Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rescore_v6 import deciding  # experiments/ is the script's directory
from fracbench.results import read_results
from fracbench.scoring import model_scores, scores_version, verdict

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--predicted", type=Path, default=HERE / "results" / "rescore_v6.json")
    args = parser.parse_args()
    predicted = json.loads(args.predicted.read_text())
    print("| model | task | predicted (version 6 on the version-5 run) | measured (rerun, version 6) | same label |")
    print("| --- | --- | --- | --- | --- |")
    agree = total = 0
    models = []
    for path in args.files:
        result = read_results(path)
        name = result.model.name
        if scores_version(result) != "6":
            raise SystemExit(f"{path}: scored under version {scores_version(result)}; this compares reruns at schema 13")
        for task in result.tasks:
            before = predicted[name]["tasks"][task]["v6"]
            after = deciding(verdict(result, task))
            same = before.split(" (")[0] == after.split(" (")[0]
            agree, total = agree + same, total + 1
            print(f"| {name} | {task} | {before} | {after} | {'yes' if same else '**no**'} |")
        m = model_scores(result)
        models.append((name, predicted[name]["model"]["v6"], f"{m.verdict}: C {m.C.value:.3f} [{m.C.low:.3f}, {m.C.high:.3f}]"
                       if m.C is not None else m.verdict))
    print(f"\n{agree} of {total} task labels as predicted.\n")
    print("| model | predicted | measured |")
    print("| --- | --- | --- |")
    for name, before, after in models:
        print(f"| {name} | {before} | {after} |")


if __name__ == "__main__":
    main()
