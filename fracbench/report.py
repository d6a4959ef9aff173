"""Reading results: the behaviour table for a terminal, and a Markdown table for docs.

Reads only :class:`~fracbench.results.RunResult` documents, never a model.
"""

from __future__ import annotations

import math
from pathlib import Path

from .results import RunResult, TaskResult

TABLE_WIDTH = 100  # behaviour_table wraps its OOD columns to fit a terminal this wide



def behaviour_table(result: RunResult, width: int = TABLE_WIDTH) -> str:
    """One row per task: version, test accuracy, mean logit diff, then each OOD axis's accuracy per level."""
    m = result.model
    name_w = max([len("task"), *map(len, result.tasks)])
    head = f"{'task':<{name_w}}  {'ver':>3}  {'test acc':>8}  {'logit diff':>10}  "
    lines = [
        f"{m.name}  ({m.n_params:,} params, sha256 {m.weights_sha256[:12]})  "
        f"n={_n_per_split(result)} seed={result.provenance.seeds.get('examples')} suite {result.suite_version}",
        head + "OOD accuracy by level (1/2/3...)",
    ]
    for name, task in result.tasks.items():
        test = task.behaviour.get("test")
        acc = f"{test.accuracy:.3f}" if test else "-"
        mean = f"{test.mean_logit_diff:+.3f}" if test else "-"
        prefix = f"{name:<{name_w}}  {task.version:>3}  {acc:>8}  {mean:>10}  "
        lines += _wrap(prefix, _ood_cells(task), width)
    lines.append("test acc, logit diff: test split accuracy and mean logit(target) - logit(foil)")
    return "\n".join(lines)


def _n_per_split(result: RunResult) -> str:
    ns = {b.n for t in result.tasks.values() for b in t.behaviour.values()}
    return str(ns.pop()) if len(ns) == 1 else "varies"


def _ood_cells(task: TaskResult) -> list[str]:
    """``["long_body 0.97/0.91/0.80", ...]``, axes in the task's order, levels ascending."""
    by_axis: dict[str, dict[int, float]] = {}
    for b in task.behaviour.values():
        if b.ood_axis is not None:
            by_axis.setdefault(b.ood_axis, {})[b.level] = b.accuracy
    return [f"{axis} " + "/".join(f"{acc[lvl]:.2f}" for lvl in sorted(acc)) for axis, acc in by_axis.items()]


def _wrap(prefix: str, cells: list[str], width: int) -> list[str]:
    """``prefix`` then the cells, two spaces apart, continuing under the first cell when a line is full."""
    lines, line = [], prefix
    for cell in cells:
        if len(line) > len(prefix) and len(line) + len(cell) > width:
            lines.append(line.rstrip())
            line = " " * len(prefix)
        line += cell + "  "
    lines.append(line.rstrip())
    return lines


def behaviour_markdown(results: list[RunResult]) -> str:
    """One Markdown table for several models: a row per (task, split), a column per model's accuracy."""
    models = [r.model.name.removeprefix("zoo:") for r in results]
    lines = ["| task | split | " + " | ".join(models) + " |", "| --- | --- |" + " ---: |" * len(models)]
    tasks = dict.fromkeys(t for r in results for t in r.tasks)
    for task in tasks:
        splits = dict.fromkeys(s for r in results if task in r.tasks for s in r.tasks[task].behaviour)
        for split in splits:
            cells = []
            for r in results:
                b = r.tasks[task].behaviour.get(split) if task in r.tasks else None
                cells.append("-" if b is None else f"{b.accuracy:.3f}")
            lines.append(f"| {task} | {split.removeprefix('ood/')} | " + " | ".join(cells) + " |")
    ns = sorted({b.n for r in results for t in r.tasks.values() for b in t.behaviour.values()})
    seeds = sorted({r.provenance.seeds.get("examples", -1) for r in results})
    lines.append("")
    lines.append(f"Choice accuracy; n = {'/'.join(map(str, ns))} items per split, seed {'/'.join(map(str, seeds))}, suite {results[0].suite_version}.")
    return "\n".join(lines)


def plot_behaviour(results: list[RunResult], path: str | Path) -> Path:
    """Robustness curves: one panel per (task, OOD axis), accuracy against severity
    (0 = the in-distribution test split), a line per model. Written as PNG or SVG by suffix."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((t, b.ood_axis) for r in results for t, tr in r.tasks.items() for b in tr.behaviour.values() if b.ood_axis))
    cols = min(5, len(panels)) or 1
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), sharey=True, squeeze=False)
    for ax, (task, axis) in zip(axes.flat, panels):
        for r in results:
            tr = r.tasks.get(task)
            if tr is None or "test" not in tr.behaviour:
                continue
            levels = sorted(b.level for b in tr.behaviour.values() if b.ood_axis == axis)
            acc = [tr.behaviour["test"].accuracy] + [tr.behaviour[f"ood/{axis}/{lvl}"].accuracy for lvl in levels]
            ax.plot([0, *levels], acc, marker="o", label=r.model.name.removeprefix("zoo:"))
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{task}\n{axis}", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_xticks(range(0, 4))
        ax.set_xlabel("severity (0 = test)", fontsize=8)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("choice accuracy")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", ncol=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=110, metadata={"Software": None} if path.suffix == ".png" else None)
    plt.close(fig)
    return path
