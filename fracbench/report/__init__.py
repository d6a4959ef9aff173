"""Reading results: behaviour and decodability tables for a terminal, a Markdown table for docs, figures.

Reads only :class:`~fracbench.results.RunResult` documents, never a model; scores come
from :mod:`fracbench.scoring`.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..results import RunResult, TaskResult
from ..scoring import D_VERSION, Decodability, Estimate, erasure_reading, erasure_shares, run_decodability, task_erasure

TABLE_WIDTH = 100  # behaviour_table wraps its OOD columns to fit a terminal this wide


def behaviour_table(result: RunResult, width: int = TABLE_WIDTH) -> str:
    """One row per task: version, test accuracy, mean logit diff, decodability D with its 95%
    interval ("-" without probes), then each OOD axis's accuracy per level."""
    m = result.model
    scores = run_decodability(result)
    name_w = max([len("task"), *map(len, result.tasks)])
    head = f"{'task':<{name_w}}  {'ver':>3}  {'test acc':>8}  {'logit diff':>10}  {'D [95% CI]':<16}  "
    lines = [
        f"{m.name}  ({m.n_params:,} params, sha256 {m.weights_sha256[:12]})  "
        f"n={_n_per_split(result)} seed={result.provenance.seeds.get('examples')} suite {result.suite_version}",
        head + "OOD accuracy by level (1/2/3...)",
    ]
    for name, task in result.tasks.items():
        test = task.behaviour.get("test")
        acc = f"{test.accuracy:.3f}" if test else "-"
        mean = f"{test.mean_logit_diff:+.3f}" if test else "-"
        d = _with_ci(scores[name].D) if name in scores else "-"
        prefix = f"{name:<{name_w}}  {task.version:>3}  {acc:>8}  {mean:>10}  {d:<16}  "
        lines += _wrap(prefix, _ood_cells(task), width)
    lines.append("test acc, logit diff: test split accuracy and mean logit(target) - logit(foil)")
    if scores:
        lines.append(f"D: decodability (definition {D_VERSION}), mean over latents of probe accuracy above max(chance, lexical)")
    return "\n".join(lines)


def decodability_table(result: RunResult) -> str:
    """One row per (task, latent) with probes: best site, test accuracy, lexical baseline, the untrained
    twin's accuracy, chance, d with its 95% interval, then the diagnostics: control accuracy and selectivity, the MLP gap
    and the mean OOD transfer accuracy."""
    scores = run_decodability(result)
    if not scores:
        return "no decodability probes in this run (--no-probes)"
    rows = [("task", "latent", "site", "acc", "lexical", "untrained", "chance", "d [95% CI]", "control", "select", "mlp gap", "ood acc")]
    for task, score in scores.items():
        section = result.tasks[task].probes
        for name, lat in score.latents.items():
            probes = section.latents[name]
            transfer = [t.accuracy for t in probes.transfer.values()]
            rows.append((
                task, name, _short_site(lat.site), f"{lat.accuracy.value:.3f}", f"{lat.lexical.value:.3f}",
                "-" if lat.untrained is None else f"{lat.untrained.value:.3f}", f"{lat.chance:.3f}",
                _with_ci(lat.d), f"{lat.control_accuracy.value:.3f}", f"{lat.selectivity.value:+.3f}",
                "-" if probes.mlp is None else f"{probes.mlp.gap:+.3f}",
                f"{sum(transfer) / len(transfer):.3f}" if transfer else "-",
            ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 3 or i == 7 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    for task in scores:
        lines += [f"{task}  {name}  skipped: {reason}" for name, reason in result.tasks[task].probes.skipped.items()]
    lines.append("acc: probe test accuracy at the site chosen on validation rows; lexical: from the token's identity alone; "
                 "untrained: the same probes on the model's untrained twin")
    lines.append("d = clip((acc - floor) / (1 - floor), 0, 1), floor = max(lexical, untrained, chance) (docs/metrics.md)")
    lines.append("not in d: control = Hewitt & Liang control-task accuracy, select = acc - control; ood acc: mean over OOD splits")
    return "\n".join(lines)


def erasure_table(result: RunResult) -> str:
    """One row per (task, latent) with an erasure: its site and rank, the share of the logit difference erasing it
    removes, the same-rank controls' mean share, the gap with its 95% interval and what it reads as."""
    rows = [("task", "latent", "site", "rank", "lost", "controls", "gap [95% CI]", "reading")]
    for task, t in result.tasks.items():
        gaps = task_erasure(t)
        for name, gap in gaps.items():
            e = t.probes.latents[name].erasure
            lost, controls = erasure_shares(t.behaviour["test"].logit_diffs, e) if gap is not None else (None, None)
            rows.append((task, name, _short_site(e.site), str(e.rank), "-" if gap is None else f"{lost:+.2f}",
                         "-" if gap is None else f"{sum(controls) / len(controls):+.2f}",
                         "-" if gap is None else _with_ci(gap), erasure_reading(gap) or "no behaviour"))
    if len(rows) == 1:
        return "no erasure in this run (schema 8 and earlier, or --no-probes)"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 3 or i >= 6 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    lines.append("lost: share of the test logit difference removed by LEACE-erasing the latent at its best site (signed); "
                 "controls: the same for random subspaces of its rank")
    lines.append("gap: |lost| minus the controls' mean |lost| (docs/metrics.md, 'Erasure'); used: gap > 0; "
                 "not used: gap below 0.1 (decoded, if D says so, but not used from that site)")
    return "\n".join(lines)


def token_pruning_table(result: RunResult) -> str:
    """One row per task with token pruning: prompts pruned, the share of removable characters kept, and precision and
    recall of the kept characters against the task's evidence, beside the chance precision of a random kept set."""
    from ..scoring import token_pruning_scores

    rows = [("task", "prompts", "kept", "precision", "chance", "recall")]
    for task, t in result.tasks.items():
        scores = token_pruning_scores(t)
        if t.token_pruning is None:
            continue
        cell = lambda key: "-" if scores.get(key) is None else _with_ci(scores[key])  # noqa: E731
        rows.append((task, str(len(t.token_pruning.prompts)), cell("kept_share"), cell("precision"), cell("chance_precision"),
                     cell("recall")))
    if len(rows) == 1:
        return "no token pruning in this run (schema 9 and earlier, or --no-probes)"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    lines.append("token pruning: each prompt's tokens removed greedily while half its logit difference stays; kept: share of "
                 "characters left; precision and recall against the characters the task says carry the answer, chance: the "
                 "precision of a random set of the same size (docs/metrics.md)")
    return "\n".join(lines)


def _with_ci(e: Estimate) -> str:
    return f"{e.value:.2f} [{e.low:.2f},{e.high:.2f}]"


def _short_site(site: str) -> str:
    """``blocks.2.hook_resid_post`` -> ``2.resid_post``: site names short enough for a table or an axis."""
    return site.removeprefix("blocks.").replace("hook_", "")


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


def plot_decodability(result: RunResult, path: str | Path, format: str | None = None) -> Path:
    """Decodability by layer: one panel per task with probes, x = site in depth order,
    y = held-out (test) probe accuracy; per latent the real probe solid, the control
    probe dashed, the floor max(chance, lexical baseline, untrained twin) dotted, the best site starred.
    Format from the suffix or ``format``."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    scores: dict[str, Decodability] = run_decodability(result)
    tasks = list(scores)
    cols = min(3, len(tasks)) or 1
    rows = max(1, math.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        section = result.tasks[task].probes
        for i, (name, lat) in enumerate(section.latents.items()):
            color = f"C{i % 10}"
            sites = list(lat.sites)
            x = range(len(sites))
            ax.plot(x, [lat.sites[s].test.accuracy for s in sites], color=color, marker="o", ms=3, label=name)
            ax.plot(x, [lat.sites[s].control_test.accuracy for s in sites], color=color, ls="--", lw=1)
            ax.axhline(scores[task].latents[name].floor, color=color, ls=":", lw=1)
            best = sites.index(lat.best_site)
            ax.plot([best], [lat.sites[lat.best_site].test.accuracy], color=color, marker="*", ms=12, mec="black", mew=0.5)
        ax.set_xticks(range(len(sites)), [_short_site(s) for s in sites], rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{task}  D = {_with_ci(scores[task].D)}", fontsize=9)
        ax.legend(fontsize=7, loc="lower right", frameon=False)
    for ax in axes.flat[len(tasks) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("test probe accuracy")
    fig.suptitle(f"{result.model.name}: real probe (solid), control (dashed), "
                 "floor max(chance, lexical, untrained twin) (dotted), best site (star)", fontsize=9)
    return save_figure(fig, path, format)


def plot_erasure(result: RunResult, path: str | Path, format: str | None = None) -> Path:
    """Erasure against random as bars: per (task, latent), the share of the test logit difference lost when the latent
    is LEACE-erased at its best site, beside the same-rank controls' mean share (their range as an error bar); latents
    of a model without behaviour are left out (no share to lose). Format from the suffix or ``format``."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    bars = []  # (label, erased share, controls' mean, min, max, reading)
    for task, t in result.tasks.items():
        for name, gap in task_erasure(t).items():
            if gap is None:
                continue
            lost, controls = erasure_shares(t.behaviour["test"].logit_diffs, t.probes.latents[name].erasure)
            bars.append((f"{task}\n{name}", lost, sum(controls) / len(controls), min(controls), max(controls),
                         erasure_reading(gap)))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(bars) + 1.5) + 2.2, 3.6))
    x = range(len(bars))
    ax.bar([i - 0.2 for i in x], [b[1] for b in bars], width=0.4, color="C0", label="latent erased (LEACE)")
    ax.bar([i + 0.2 for i in x], [b[2] for b in bars], width=0.4, color="C7", label="random subspaces, same rank",
           yerr=[[b[2] - b[3] for b in bars], [b[4] - b[2] for b in bars]], capsize=2)
    for i, b in enumerate(bars):
        ax.annotate(b[5], (i, max(b[1], b[4], 0)), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(list(x), [b[0] for b in bars], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("share of the logit difference lost")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: never over a bar
    ax.set_ylim(top=max([b[1] for b in bars] + [b[4] for b in bars] + [1.0]) + 0.12)  # room for the readings
    measured = any(task_erasure(t) for t in result.tasks.values())
    ax.set_title(f"{result.model.name}: " + ("erasing each latent at its best site" if bars else
                                             "no behaviour to lose on any task" if measured else "no erasure in this run"), fontsize=9)
    return save_figure(fig, path, format)


def save_figure(fig, path: str | Path, format: str | None = None, dpi: int = 110) -> Path:
    """Lay out, write (format from the suffix unless given; PNGs without a timestamped Software tag,
    so the same results draw the same bytes) and close ``fig``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    fmt = format or path.suffix.lstrip(".")
    fig.savefig(path, dpi=dpi, format=fmt, metadata={"Software": None} if fmt == "png" else None)
    plt.close(fig)
    return path
