"""Reading results, coherence half: the verdict table, robustness curves and the D-vs-C scatter.

Reads only results documents; every score comes from :mod:`fracbench.scoring`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import save_figure
from ..results import RunResult, accuracy_of
from ..circuits.regimes import SHORT_PROMPT_CHARS as SHORT_CHARS
from ..scoring import C_LOW, COMPONENTS, D_HIGH, Verdict, recovered, regime_reuse_matrix, scores_version, scores_versions, specificity_drops, verdict

STRESS_KINDS = ("activation_noise", "weight_noise", "dropout", "distractors")
SHORT = {"faithfulness": "faith", "compactness": "compact", "stress": "stress", "reuse": "reuse", "selectivity": "select",
         "specificity": "specif", "ood": "ood"}
REGIME_ORDER = ("id", "short", "long", "ood")


def run_verdicts(result: RunResult) -> dict[str, Verdict]:
    return {name: verdict(result, name) for name in result.tasks}


def coherence_table(result: RunResult) -> str:
    """One row per task: circuit size (nodes, their share of all nodes, edges), the components of C, D, C, F and
    the verdict with its reasons."""
    verdicts = run_verdicts(result)
    name_w = max([len("task"), *map(len, result.tasks)])
    comp = "".join(f"{SHORT[c]:>8}" for c in COMPONENTS)
    lines = [f"{'task':<{name_w}}  {'nodes':>6} {'frac':>5} {'edges':>7} {'restarts (J)':<19}{comp}  {'D':>5} {'C [95% CI]':<17} {'F':>6} {'G':>5} {'cue':>6}  verdict"]
    for name, v in verdicts.items():
        c = result.tasks[name].circuits
        nodes = "-" if c is None else str(c.n_nodes)
        frac = "-" if c is None else f"{c.n_nodes / sum(c.node_sites.values()):.2f}"
        edges = "-" if c is None or c.n_edges is None else str(c.n_edges)
        restarts = restart_summary(c, v.components.get("restart_jaccard"))
        cells = "".join(f"{'-' if v.components[k] is None else f'{v.components[k]:.2f}':>8}" for k in COMPONENTS)
        D = "-" if v.D is None else f"{v.D.value:.2f}"
        C = "-" if v.C is None else f"{v.C.value:.2f} [{v.C.low:.2f},{v.C.high:.2f}]"
        F = "-" if v.F is None else f"{v.F.value:+.2f}"
        G = "-" if v.G is None else f"{v.G.value:.2f}"
        cue = "-" if v.cue_reliance is None else f"{v.cue_reliance.value:+.2f}"
        reasons = f" ({', '.join(v.reasons)})" if v.reasons else ""
        lines.append(f"{name:<{name_w}}  {nodes:>6} {frac:>5} {edges:>7} {restarts:<19}{cells}  {D:>5} {C:<17} {F:>6} {G:>5} {cue:>6}  {v.verdict}{reasons}")
    lines += [
        f"C: geometric mean of faith, compact, stress, reuse and select (scores version {scores_version(result)}); F = D - C; "
        f"FRACTURED: D's 95% interval above {D_HIGH} and C's below {C_LOW}; either interval across its threshold: inconclusive (docs/metrics.md)",
        "faith = sqrt(closeness of sufficiency x necessity); compact = how much of a random ranking's gap to the model the learned ranking "
        "closes over MIB's size grid; stress: closeness of the circuit's robustness to the full model's;",
        "reuse: the weakest axis (length, ood) of how much of a regime's own circuit's margin over random node sets another regime's circuit "
        "keeps; select: the share of the circuit's effect a control-task mask of its size does not produce;",
        "specif = own drop - largest other, ood: the circuit's closeness to the model on usable OOD splits (both reported, not in C);",
        "G: the share of the test accuracy's margin over chance kept OOD (not in C); cue: accuracy with the spurious cue agreeing minus flipped;",
        "restarts: the search's restarts, their smallest-largest circuit in nodes, J their mean pairwise node Jaccard (C's interval holds "
        "their spread)",
    ]
    return "\n".join(lines + regime_lines(result, verdicts) + specificity_matrix(result))


def regime_lines(result: RunResult, verdicts: dict[str, Verdict]) -> list[str]:
    """Lines of the reuse table: per task, each regime circuit's size, each axis's reuse and node Jaccard (beside the
    search restarts' agreement), and the control task's share; empty without regime circuits."""
    rows = []
    for name, v in verdicts.items():
        c = result.tasks[name].circuits
        if c is None or c.regimes is None:
            continue
        sizes = " ".join(f"{r}={c.regimes.circuits[r].n_nodes if c.regimes.circuits[r].test is not None else '-'}"
                         for r in REGIME_ORDER if r in c.regimes.circuits)
        axes = "  ".join(f"{axis} {_num(v.components.get(f'reuse_{axis}'))} (J {_num(v.components.get(f'jaccard_{axis}'))})"
                         for axis in ("length", "ood"))
        rows.append(f"{name:<18} {sizes:<36} {axes}   restarts J {_num(v.components.get('restart_jaccard'))}   "
                    f"control share {_num(v.components.get('control_share'))}")
    if not rows:
        return []
    return ["", "reuse across regimes: circuit sizes in nodes (id: the reported circuit; short/long: prompts under/over "
            f"{SHORT_CHARS} characters; ood: the usable OOD splits pooled), reuse per axis and the two circuits' node Jaccard", *rows]


def _num(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def restart_summary(c, jaccard: float | None) -> str:
    """``R: smallest-largest (J x.xx)`` of a circuit section's restarts; ``-`` for a single search."""
    if c is None or not c.restarts:
        return "-"
    sizes = [r.n_nodes for r in c.restarts]
    return f"{len(sizes)}: {min(sizes)}-{max(sizes)}" + ("" if jaccard is None else f" ({jaccard:.2f})")


def specificity_matrix(result: RunResult) -> list[str]:
    """Lines of Break It Down's matrix (row: the circuit ablated; column: the task measured), empty without one."""
    drops = specificity_drops(result)
    if not drops:
        return []
    names = list(result.tasks)
    width = max(len(n) for n in names)
    lines = ["", "specificity: share of each task's logit difference removed by ablating a circuit (row: circuit, column: task)",
             f"{'':<{width}}  " + " ".join(f"{n[:8]:>8}" for n in names)]
    for a in names:
        if a in drops:
            lines.append(f"{a:<{width}}  " + " ".join(f"{drops[a][b]:>8.2f}" if b in drops[a] else f"{'-':>8}" for b in names))
    return lines


def plot_coherence(result: RunResult, path: str | Path, format: str | None = None) -> Path:
    """One row of panels per task with a circuit: each stress curve's accuracy (circuit solid,
    full model dashed) against strength, and OOD accuracy and circuit faithfulness against
    severity; a last panel plots D against C for every task, FRACTURED ones marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [n for n, t in result.tasks.items() if t.circuits is not None]
    cols = len(STRESS_KINDS) + 1
    rows = len(tasks) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 2.2 * rows), squeeze=False)
    for r, name in enumerate(tasks):
        t = result.tasks[name]
        clean_model, clean_circuit = t.behaviour["test"].accuracy, accuracy_of(t.circuits.test.circuit)
        for c, kind in enumerate(STRESS_KINDS):
            ax = axes[r, c]
            curve = getattr(t.stress, kind) if t.stress is not None else None
            if curve is None:
                ax.axis("off")
                continue
            x = [0.0, *curve.levels]
            ax.plot(x, [clean_circuit, *map(accuracy_of, curve.circuit)], marker="o", ms=3, label="circuit")
            ax.plot(x, [clean_model, *map(accuracy_of, curve.model)], ls="--", marker="o", ms=3, label="model")
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.set_ylim(0, 1.02)
            ax.set_title(f"{name}: {kind.replace('_', ' ')}", fontsize=8)
        ax = axes[r, -1]
        splits = sorted(t.circuits.ood, key=lambda s: (t.behaviour[s].ood_axis, t.behaviour[s].level))
        ax.plot(range(len(splits)), [t.behaviour[s].accuracy for s in splits], ls="--", marker="o", ms=3, label="model accuracy")
        faithful = [_recovered(t, s) for s in splits]
        ax.plot(range(len(splits)), faithful, marker="o", ms=3, label="circuit faithfulness")
        undefined = [i for i, f in enumerate(faithful) if math.isnan(f)]
        ax.scatter(undefined, [0.0] * len(undefined), marker="x", color="grey", s=12, label="no behaviour there (scored 0)")
        ax.set_xticks(range(len(splits)), [s.removeprefix("ood/") for s in splits], rotation=60, ha="right", fontsize=6)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{name}: OOD", fontsize=8)
    for c in range(cols):
        axes[-1, c].axis("off")
    ax = axes[-1, 0]
    ax.axis("on")
    for name, v in run_verdicts(result).items():
        if v.D is None or v.C is None:
            continue
        fractured = v.verdict == "FRACTURED"
        ax.scatter([v.C.value], [v.D.value], marker="x" if fractured else "o", color="C3" if fractured else "C0")
        ax.annotate(name, (v.C.value, v.D.value), fontsize=6)
    ax.axhline(D_HIGH, color="grey", lw=0.8, ls=":")
    ax.axvline(C_LOW, color="grey", lw=0.8, ls=":")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("coherence C")
    ax.set_ylabel("decodability D")
    ax.set_title("D vs C (x = FRACTURED)", fontsize=8)
    for ax in (axes[0, 0], axes[0, -1]):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, frameon=False)
    fig.suptitle(f"{result.model.name}: robustness of circuit (solid) and model (dashed)", fontsize=9)
    return save_figure(fig, path, format, dpi=100)


def _recovered(task, split: str) -> float:
    """The in-distribution circuit's sufficiency on an OOD split (NaN where the model shows no behaviour there)."""
    full = float(np.mean(task.behaviour[split].logit_diffs))
    circ = task.circuits.ood[split]
    return recovered(float(np.mean(circ.circuit)), float(np.mean(circ.empty)), full)


def scores_markdown(results: list[RunResult]) -> str:
    """Markdown tables of the scores: per (task, model) D, C, G, cue reliance and the verdict with its reasons; then
    per model its means and verdict (``fracbench report --markdown``; the README's tables come from it)."""
    from ..scoring import model_scores

    def ci(e) -> str:
        return "-" if e is None else f"{e.value:.2f} [{e.low:.2f}, {e.high:.2f}]"

    def signed(e) -> str:
        return "-" if e is None else f"{e.value:+.2f} [{e.low:+.2f}, {e.high:+.2f}]"

    scores = {r.model.name: model_scores(r) for r in results}
    lines = ["| task | model | D | C | G | cue reliance | nodes | restarts (J) | verdict |",
             "| --- | --- | --- | --- | --- | --- | ---: | --- | --- |"]
    for task in dict.fromkeys(t for r in results for t in r.tasks):
        for r in results:
            if task not in r.tasks:
                continue
            v, c = scores[r.model.name].tasks[task], r.tasks[task].circuits
            nodes = "-" if c is None or c.search_sufficiency is None else f"{c.n_nodes:,}"
            reasons = f" ({'; '.join(v.reasons)})" if v.reasons else ""
            lines.append(f"| {task} | {r.model.name.removeprefix('zoo:')} | {ci(v.D)} | {ci(v.C)} | {ci(v.G)} | {signed(v.cue_reliance)} | "
                         f"{nodes} | {restart_summary(c, v.components.get('restart_jaccard'))} | {v.verdict}{reasons} |")
    lines += ["", "| model | D | C | F | verdict |", "| --- | --- | --- | --- | --- |"]
    for name, m in scores.items():
        lines.append(f"| {name.removeprefix('zoo:')} | {ci(m.D)} | {ci(m.C)} | {signed(m.F)} | {m.verdict} ({m.reasons[0]}) |")
    lines += ["", f"Scores version {scores_versions(results)}; 95% bootstrap intervals; definitions in docs/metrics.md."]
    return "\n".join(lines)


SENSITIVITY_GRID = {  # each threshold varied alone around its value in force (fracbench.scoring.THRESHOLDS)
    "D_high": (0.3, 0.4, 0.5, 0.6, 0.7),
    "C_low": (0.3, 0.4, 0.5, 0.6, 0.7),
    "cue_reliance_min": (0.0, 0.05, 0.1, 0.2),
    "model_majority": (1 / 3, 0.5, 2 / 3),
}
LABEL_SHORT = {"FRACTURED": "F", "coherent": "c", "inconclusive": "i", "does not decode": "n", "no behaviour": "b", "not scored": "-"}


def sensitivity_markdown(results: list[RunResult]) -> str:
    """The verdicts against each threshold, the others at their values in force: per model, how many tasks hold each
    label (F FRACTURED, c coherent, i inconclusive, n does not decode, b no behaviour), how many rely on their cue, and
    the model's verdict (``fracbench report --sensitivity``; docs/metrics.md's table)."""
    from dataclasses import replace

    from ..scoring import THRESHOLDS, model_scores

    models = [r.model.name.removeprefix("zoo:") for r in results]
    lines = ["| threshold | value | " + " | ".join(models) + " |", "| --- | ---: |" + " --- |" * len(models)]
    for name, values in SENSITIVITY_GRID.items():
        for value in values:
            th = replace(THRESHOLDS, **{name: value})
            cells = []
            for r in results:
                m = model_scores(r, thresholds=th)
                counts = " ".join(f"{m.counts[label]}{LABEL_SHORT[label]}" for label in LABEL_SHORT if m.counts.get(label))
                cue = sum(v.relies_on_cue for v in m.tasks.values())
                cells.append(f"{counts}; cue {cue}; **{m.verdict}**")
            marker = " (in force)" if value == getattr(THRESHOLDS, name) else ""
            lines.append(f"| {name} | {value:.2f}{marker} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_reuse(result: RunResult, path: str | Path, format: str | None = None) -> Path:
    """Reuse across regimes as a matrix per task: row A's circuit measured on column B's prompts, reuse(A -> B) (0: no
    more than random node sets of its size; 1: as much as B's own circuit); the diagonal is 1 by definition, blank cells
    are undefined (no circuit, no behaviour or too few prompts). Format from the suffix or ``format``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [n for n, t in result.tasks.items() if t.circuits is not None and t.circuits.regimes is not None]
    verdicts = run_verdicts(result)
    cols = max(1, min(3, len(tasks)))
    rows = max(1, math.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.1 * rows), squeeze=False)
    image = None
    for ax, name in zip(axes.flat, tasks):
        matrix, names = regime_reuse_matrix(result, name)
        image = ax.imshow(np.ma.masked_invalid(matrix), vmin=0, vmax=1, cmap="viridis")
        for (i, j), value in np.ndenumerate(matrix):
            if not math.isnan(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value < 0.6 else "black")
        ax.set_xticks(range(len(names)), names, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("prompts of regime", fontsize=7)
        ax.set_ylabel("circuit of regime", fontsize=7)
        reuse = verdicts[name].components.get("reuse")
        ax.set_title(f"{name}: reuse {_num(reuse)}", fontsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    if image is None:
        axes[0, 0].text(0.5, 0.5, "no regime circuits in this run", ha="center", va="center")
    fig.suptitle(f"{result.model.name}: reuse(A -> B) across regimes (0 = random node sets, 1 = B's own circuit)", fontsize=9)
    return save_figure(fig, path, format, dpi=100)


def basis_sensitivity_table(results: list[RunResult]) -> str:
    """Per model whose rotated twin is among ``results`` (same tasks), per task: D and C of the model and of the twin
    and their differences (docs/metrics.md, "Basis sensitivity"); empty when no pair is there."""
    by_name = {r.model.name: r for r in results}
    lines = []
    for twin in results:
        base, marker, _ = twin.model.name.partition(" (rotated twin, seed ")
        if not marker or base not in by_name:
            continue
        model = by_name[base]
        mine, theirs = run_verdicts(model), run_verdicts(twin)
        lines += [f"basis sensitivity: {base} against {twin.model.name}",
                  f"{'task':<18} {'D model':>17} {'D twin':>17} {'dD':>6} {'C model':>17} {'C twin':>17} {'dC':>6}"]
        for task in (t for t in model.tasks if t in twin.tasks):
            a, b = mine[task], theirs[task]
            lines.append(f"{task:<18} {_ci(a.D):>17} {_ci(b.D):>17} {_diff(a.D, b.D):>6} {_ci(a.C):>17} {_ci(b.C):>17} {_diff(a.C, b.C):>6}")
        lines.append("")
    return "\n".join(lines).rstrip()


def _ci(e) -> str:
    return "-" if e is None else f"{e.value:.2f} [{e.low:.2f},{e.high:.2f}]"


def _diff(a, b) -> str:
    return "-" if a is None or b is None else f"{b.value - a.value:+.2f}"
