"""The README's verdict grid: a row per task and one for the model, a column per zoo model, each cell its verdict with
the interval that decided it (C, or D where D decided), the cue reliance where the model relies on its cue, and the
scores version each column is scored under.

    python experiments/board_grid.py leaderboard/submissions/*.json*

Prints Markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fracbench.models import zoo
from fracbench.results import RunResult, read_results
from fracbench.scoring import Estimate, model_scores, scores_version
from fracbench.tasks import TASKS


def interval(name: str, e: Estimate | None) -> str:
    return f"{name} -" if e is None else f"{name} {e.value:.2f} [{e.low:.2f}, {e.high:.2f}]"


def decided_by_d(v) -> bool:
    """Whether D's rule decided the verdict (D's interval not above D_high): its reason then names D's interval."""
    return v.C is None or v.D is None or any(reason.startswith("D ") for reason in v.reasons)


def cell(v) -> str:
    out = f"{v.verdict}, {interval('D', v.D) if decided_by_d(v) else interval('C', v.C)}"
    if v.relies_on_cue:
        out += f"; relies on its cue ({v.cue_reliance.value:+.2f})"
    return out


def grid(results: list[RunResult]) -> str:
    order = {f"zoo:{name}": i for i, name in enumerate(zoo.reference_models())}
    results = sorted(results, key=lambda r: order.get(r.model.name, len(order)))
    scored = [model_scores(r) for r in results]
    names = [r.model.name.removeprefix("zoo:") for r in results]
    lines = ["| task | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for task in TASKS.names():
        lines.append(f"| {task} | " + " | ".join(cell(s.tasks[task]) if task in s.tasks else "-" for s in scored) + " |")
    lines.append("| **model** | " + " | ".join(f"{s.verdict}: {interval('C', s.C)}" for s in scored) + " |")
    lines.append("| scores version | " + " | ".join(scores_version(r) for r in results) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    print(grid([read_results(f) for f in args.files]))


if __name__ == "__main__":
    main()
