"""The known-answer table: each zoo model of known organization (every training seed), what was expected of it before
it was run (docs/metrics.md, "Known answers of scores version 4", the compiled rows restated for version 5) and what the
board's results file says, with 95% intervals, right or wrong. Each file is held to the expectations of the scores
version it is scored under.

    python experiments/known_answers.py leaderboard/submissions/*.json [--recovery experiments/results/compiled_recovery.json]

Prints Markdown (docs/metrics.md and the README take it as it is).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from fracbench.circuits.recovery import recovery
from fracbench.models.compiled import MIRRORS, TRUE_CIRCUITS
from fracbench.results import RunResult, read_results
from fracbench.scoring import Estimate, model_scores, paired_model_difference, scores_version

CI = "{:.2f} [{:.2f}, {:.2f}]"


def ci(e: Estimate | None) -> str:
    return "-" if e is None else CI.format(e.value, e.low, e.high)


def rows(results: dict[str, RunResult], recovery_file: Path | None) -> list[str]:
    out = ["| model | measurement | expected | measured | right? |", "| --- | --- | --- | --- | --- |"]

    def add(model: str, what: str, expected: str, measured: str, right: bool | None) -> None:
        out.append(f"| {model} | {what} | {expected} | {measured} | {'-' if right is None else 'yes' if right else '**no**'} |")

    if "zoo:routed" in results:
        r = results["zoo:routed"]
        scores = model_scores(r)
        for task, v in scores.tasks.items():
            g = r.tasks[task].circuits.regimes if r.tasks[task].circuits is not None else None
            both = g is not None and all(g.circuits.get(x) is not None and g.circuits[x].test is not None for x in ("short", "long"))
            length = v.components.get("reuse_length")
            if both:
                add("routed", f"{task}: reuse across lengths; verdict", "near 0; FRACTURED, reuse named",
                    f"{'-' if length is None else f'{length:.2f}'}; {v.verdict}",
                    length is not None and length < 0.2 and v.verdict == "FRACTURED" and any(x.startswith("reuse") for x in v.reasons))
            else:
                add("routed", f"{task}: verdict", "(a length regime without behaviour: no expectation)", v.verdict, None)
        add("routed", "model verdict", "FRACTURED", f"{scores.verdict}, C {ci(scores.C)}", scores.verdict == "FRACTURED")
    if "zoo:compiled" in results:
        r = results["zoo:compiled"]
        scores = model_scores(r)
        version = scores_version(r)
        aurocs = json.loads(recovery_file.read_text()) if recovery_file is not None and recovery_file.exists() else {}
        for task in sorted(TRUE_CIRCUITS):
            v, c = scores.tasks[task], r.tasks[task].circuits
            if version == "4":  # version 4's expectation: every restart recovers the circuit, and both tasks are coherent
                found = [recovery(x.kept, TRUE_CIRCUITS[task], MIRRORS[task]) for x in c.restarts]
                which, precision, recall = "worst restart", min(f.precision for f in found), min(f.recall for f in found)
            else:  # version 5 reports the smallest restart: its circuit is the one expected to be the true one
                found = recovery(c.kept, TRUE_CIRCUITS[task], MIRRORS[task])
                which, precision, recall = f"reported restart, {c.n_nodes} nodes", found.precision, found.recall
            add("compiled", f"{task}: recall, precision ({which})", "1; at least 0.5", f"{recall:.2f}; {precision:.2f}",
                recall == 1.0 and precision >= 0.5)
            if task in aurocs:
                rows_ = aurocs[task]["restarts"]
                if [row["n_nodes"] for row in rows_] != [x.n_nodes for x in c.restarts]:
                    add("compiled", f"{task}: AUROC of the learned scores", "at least 0.95",
                        f"not comparable: {recovery_file.name} holds other restarts than this run", None)
                else:
                    auroc = min(row["auroc"] for row in rows_) if version == "4" else rows_[c.reported]["auroc"]
                    add("compiled", f"{task}: AUROC of the learned scores ({which.split(',')[0]}; {recovery_file.name})",
                        "at least 0.95", f"{auroc:.3f}", auroc >= 0.95)
            if version == "4":
                add("compiled", f"{task}: verdict", "coherent", f"{v.verdict}, C {ci(v.C)}", v.verdict == "coherent")
                continue
            add("compiled", f"{task}: C's interval", "above 0.5", ci(v.C), v.C is not None and v.C.low > 0.5)
            expected = ("coherent",) if task == "bracket_depth" else ("does not decode", "inconclusive")
            add("compiled", f"{task}: verdict (D {ci(v.D)})", " or ".join(expected), v.verdict, v.verdict in expected)
        add("compiled", "model verdict", "not FRACTURED", scores.verdict, scores.verdict != "FRACTURED")
    if "zoo:pruned" in results and "zoo:dense" in results:
        d = paired_model_difference(results["zoo:dense"], results["zoo:pruned"])
        add("pruned", "model C minus dense's (paired)", "interval reaches 0 or below", ci(d), d.low <= 0)
    if "zoo:sparse" in results and "zoo:dense" in results:
        d = paired_model_difference(results["zoo:dense"], results["zoo:sparse"])
        add("sparse", "model C minus dense's (paired)", "reported, not forced (issue 13)", ci(d), None)
        dense, sparse = results["zoo:dense"].tasks, results["zoo:sparse"].tasks
        ratios = {t: dense[t].circuits.n_edges / sparse[t].circuits.n_edges for t in dense
                  if t in sparse and dense[t].circuits is not None and sparse[t].circuits is not None and sparse[t].circuits.n_edges}
        if ratios:
            geometric = math.exp(sum(map(math.log, ratios.values())) / len(ratios))
            add("sparse", "circuit edges, dense / sparse (geometric mean over tasks; the smallest)", "at least 2; above 1 (Gao et al.)",
                f"{geometric:.1f}; {min(ratios.values()):.1f} ({', '.join(f'{t} {r:.1f}' for t, r in ratios.items())})",
                geometric >= 2 and min(ratios.values()) > 1)
    for recipe in ("dense", "sparse", "shortcut"):
        for seed, name in ((0, f"zoo:{recipe}"), (1, f"zoo:{recipe}-s1"), (2, f"zoo:{recipe}-s2")):
            if name not in results:
                continue
            scores = model_scores(results[name])
            relies = sorted(t for t, v in scores.tasks.items() if v.relies_on_cue)
            add(f"{recipe} (seed {seed})", "model verdict; C; tasks relying on their cue", "not FRACTURED" + ("; cue named where its "
                "cue-flip split shows it" if recipe == "shortcut" else "; none"),
                f"{scores.verdict}; C {ci(scores.C)}; {', '.join(relies) or 'none'}",
                scores.verdict != "FRACTURED" and (recipe == "shortcut" or not relies))
    if "zoo:random" in results:
        scores = model_scores(results["zoo:random"])
        flagged = [t for t, v in scores.tasks.items() if v.verdict == "FRACTURED"]
        add("random", "tasks flagged", "none", ", ".join(flagged) or "none", not flagged)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--recovery", type=Path, default=Path(__file__).parent / "results" / "compiled_recovery.json")
    args = parser.parse_args()
    results = {}
    for f in args.files:
        r = read_results(f)
        results[r.model.name] = r
    print("\n".join(rows(results, args.recovery)))


if __name__ == "__main__":
    main()
