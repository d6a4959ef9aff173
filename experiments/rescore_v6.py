"""What scores version 6 says about results files scored under version 5: each file given is scored as written
(schema 11 or 12: version 5) and read as schema 13 (version 6) with the same raw numbers, which is exactly what a
rerun at schema 13 would read if it measured the same numbers (version 6 changes only the reading, docs/metrics.md).
Prints, per model and task, both verdicts with the interval that decided each, and the reuse directions version 6
leaves undefined; with --out, writes the same as JSON.

    python experiments/rescore_v6.py leaderboard/submissions/*.json.xz [--out experiments/results/rescore_v6.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from fracbench.results import RunResult, read_results
from board_grid import decided_by_d  # experiments/ is the script's directory
from fracbench.scoring import model_scores, regime_reuse_matrix, scores_version, verdict


def as_schema_13(result: RunResult) -> RunResult:
    """The same file read by version 6: relabelled, not revalidated (schema 13 has schema 12's fields; scoring reads no
    field that 11 lacks)."""
    return result.model_copy(update={"schema_version": "13"})


def deciding(v) -> str:
    """The verdict with the interval that decided it: D where D's rule decided, else C."""
    name, e = ("D", v.D) if decided_by_d(v) else ("C", v.C)
    return v.verdict if e is None else f"{v.verdict} ({name} {e.value:.3f} [{e.low:.3f}, {e.high:.3f}])"


def dropped_directions(old: RunResult, new: RunResult, task: str) -> list[str]:
    """The reuse directions version 5 reads and version 6 leaves undefined (NaN in the figure's matrix)."""
    t = old.tasks[task]
    if t.circuits is None or t.circuits.regimes is None:
        return []
    (before, names), (after, _) = regime_reuse_matrix(old, task), regime_reuse_matrix(new, task)
    return [f"{a}->{b}" for i, a in enumerate(names) for j, b in enumerate(names)
            if not math.isnan(before[i, j]) and math.isnan(after[i, j])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {}
    for path in args.files:
        old = read_results(path)
        new = as_schema_13(old)
        rows = {}
        for task in old.tasks:
            v5, v6 = verdict(old, task), verdict(new, task)
            rows[task] = {"v5": deciding(v5), "v6": deciding(v6), "changed": v5.verdict != v6.verdict,
                          "reuse_v5": v5.components.get("reuse"), "reuse_v6": v6.components.get("reuse"),
                          "directions_left_undefined": dropped_directions(old, new, task)}
        m5, m6 = model_scores(old), model_scores(new)
        report[old.model.name] = {"scores_version_as_stored": scores_version(old), "tasks": rows,
                                  "model": {"v5": f"{m5.verdict}: C {m5.C.value:.3f} [{m5.C.low:.3f}, {m5.C.high:.3f}]",
                                            "v6": f"{m6.verdict}: C {m6.C.value:.3f} [{m6.C.low:.3f}, {m6.C.high:.3f}]"}}
        print(f"## {old.model.name}: model {report[old.model.name]['model']['v5']} -> {report[old.model.name]['model']['v6']}")
        for task, row in rows.items():
            mark = "CHANGED " if row["changed"] else ""
            print(f"  {mark}{task}: {row['v5']} -> {row['v6']}; reuse {row['reuse_v5']} -> {row['reuse_v6']}; "
                  f"undefined under 6: {', '.join(row['directions_left_undefined']) or '-'}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
