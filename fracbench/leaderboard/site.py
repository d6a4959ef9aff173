"""The board's static site: an index with a sortable table, a page per entry with its plots, the D-vs-C scatter,
and the same data as leaderboard.json and leaderboard.md.

No external asset (styles and the sorting script are inline), so it works offline, from file:// and from any
static host. The same board builds byte-identical files: no timestamps, figures without dates or random ids.
Every free-text field is escaped; page names come from content hashes, never from the submissions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from html import escape
from pathlib import Path

from tqdm.auto import tqdm

from ..report import plot_decodability, plot_erasure
from ..report.coherence import plot_coherence, plot_reuse
from ..scoring import C_LOW, COMPONENTS, D_HIGH, scores_versions
from ..tasks import SUITE_VERSION
from .table import Entry, leaderboard_json, leaderboard_markdown, load_board, n_params, sort_key, with_ci

SITE = "site"  # default output directory inside the board
SVG_SALT = "fracbench"  # matplotlib's SVG ids are hashed with this instead of a random salt

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 78em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; width: 100%; margin: 1em 0; }
th, td { padding: .3em .5em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th button { font: inherit; font-weight: bold; border: 0; background: none; cursor: pointer; padding: 0; }
th[aria-sort=ascending] button::after { content: " \\25B2"; }
th[aria-sort=descending] button::after { content: " \\25BC"; }
.ci { color: #777; font-size: 90%; }
.flag { color: #fff; background: #b3261e; padding: 0 .35em; border-radius: 3px; font-weight: bold; }
.reasons { color: #555; font-size: 90%; }
.partial { color: #8a5a00; font-weight: bold; }
img { max-width: 100%; }
code { font-size: 90%; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.board").forEach(function (table) {
  var headers = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headers, function (th, col) {
    var button = th.querySelector("button");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.type === "number";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        if (x === "" || y === "") { return (x === "") - (y === ""); }  /* undefined values last either way */
        var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return ascending ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

COLUMNS = (("#", "number"), ("model", "text"), ("kind", "text"), ("parameters", "number"), ("D", "number"), ("C", "number"),
           ("F", "number"), ("verdict", "text"), ("tasks", "number"), ("fracbench", "text"), ("date", "text"))


def build_site(board: str | Path, out: str | Path | None = None, progress: bool = False) -> Path:
    """Check ``board``, then write its site to ``out`` (default ``<board>/site``), replacing the previous build only
    once the new one is complete; returns ``out``. Raises :class:`~fracbench.leaderboard.Refused` when the board
    does not check (nothing is written)."""
    entries = load_board(board)
    out = Path(out) if out is not None else Path(board) / SITE
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-building-"))
    try:
        write_site(entries, staging, progress)
        _replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def write_site(entries: list[Entry], out: Path, progress: bool = False) -> None:
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.json").write_text(json.dumps(leaderboard_json(entries), indent=1, sort_keys=True) + "\n")
    (out / "leaderboard.md").write_text(leaderboard_markdown(entries))
    plot_scatter(entries, out / "scatter.svg")
    (out / "index.html").write_text(index_page(entries))
    by_name = {e.result.model.name: e for e in entries}
    for e in tqdm(entries, desc="model pages", disable=not progress):
        figures = model_figures(e, out / "models")
        twin = next((t for t in entries if t.result.model.name.startswith(f"{e.result.model.name} (rotated twin, seed ")), None)
        base = by_name.get(e.result.model.name.partition(" (rotated twin, seed ")[0]) if "(rotated twin" in e.result.model.name else None
        (out / "models" / f"{e.id}.html").write_text(model_page(e, figures, twin=twin, original=base))


def _replace(new: Path, out: Path) -> None:
    """Put the finished build at ``out``; the old one is moved aside first and removed last."""
    os.chmod(new, 0o755)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-old-"))
        os.rename(out, old / out.name)
    os.rename(new, out)
    if old is not None:
        shutil.rmtree(old)


# -- pages -------------------------------------------------------------------------


def page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def estimate_cell(e) -> str:
    if e is None:
        return '<td class="num" data-sort="">–</td>'
    return f'<td class="num" data-sort="{sort_key(e)}">{e.value:.2f} <span class="ci">[{e.low:.2f}, {e.high:.2f}]</span></td>'


def verdict_html(label: str, reasons: list[str]) -> str:
    flag = f'<span class="flag">{escape(label)}</span>' if label == "FRACTURED" else escape(label)
    return flag + (f'<div class="reasons">{"<br>".join(escape(r) for r in reasons)}</div>' if reasons else "")


def index_page(entries: list[Entry]) -> str:
    body = ["<h1>fracbench leaderboard</h1>",
            f"<p>Suite {escape(SUITE_VERSION)}, scores version {escape(scores_versions([e.result for e in entries]))}; {len(entries)} submission(s). "
            "Every score is recomputed from the submission's raw per-item numbers, never taken from it. "
            "D (decodability), C (coherence) and F = D − C are means over the entry's tasks, each with its 95% bootstrap "
            f"interval; a task the model shows no behaviour on counts C = 0. <span class=\"flag\">FRACTURED</span>: on a majority of "
            f"the tasks the features decode (D's 95% interval above {D_HIGH}) but the circuit is not coherent (C's below {C_LOW}); "
            "inconclusive: no label holds a majority of the tasks. Click a column's name to sort by it. "
            'Also as <a href="leaderboard.json">leaderboard.json</a> and <a href="leaderboard.md">leaderboard.md</a>.</p>',
            '<figure><img src="scatter.svg" alt="Decodability D against coherence C, per submission and per task; '
            'fractured ones marked X">'
            "<figcaption>D against C: left, per submission (means over tasks, 95% intervals); right, per task. "
            "X: FRACTURED; hollow: partial submissions; submissions without C (no behaviour for a circuit to explain) "
            "are not drawn.</figcaption></figure>"]
    for group, title in (("full", "Full suite"), ("partial", "Partial submissions")):
        rows = [e for e in entries if e.group == group]
        if not rows:
            continue
        note = " <span class=\"partial\">partial</span>: a subset of the tasks, ranked separately." if group == "partial" else ""
        body.append(f"<h2>{title}</h2>\n<p>Ranked by C, highest first.{note}</p>")
        body.append(board_table(group, rows))
    if not entries:
        body.append("<p>No submissions yet.</p>")
    body.append(f"<script>{SORT_SCRIPT}</script>")
    return page("fracbench leaderboard", "\n".join(body))


def board_table(group: str, rows: list[Entry]) -> str:
    head = "".join(f'<th data-type="{kind}"><button type="button">{escape(name)}</button></th>' for name, kind in COLUMNS)
    out = [f'<table class="board" id="board-{group}">', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for e in rows:
        m, s = e.result.model, e.scores
        marker = ' <span class="partial">partial</span>' if e.partial else ""
        out.append(
            f'<tr class="{"fractured" if s.verdict == "FRACTURED" else "entry"}">'
            f'<td class="num" data-sort="{e.rank}">{e.rank}</td>'
            f'<td data-sort="{escape(m.name)}"><a href="models/{e.id}.html">{escape(m.name)}</a>{marker}</td>'
            f'<td data-sort="{escape(m.kind)}">{escape(m.kind)}</td>'
            f'<td class="num" data-sort="{m.n_params}">{n_params(m.n_params)}</td>'
            f"{estimate_cell(s.D)}{estimate_cell(s.C)}{estimate_cell(s.F)}"
            f'<td data-sort="{escape(s.verdict)}">{verdict_html(s.verdict, s.reasons)}</td>'
            f'<td class="num" data-sort="{len(e.result.tasks)}">{len(e.result.tasks)}</td>'
            f'<td data-sort="{escape(e.result.fracbench_version)}">{escape(e.result.fracbench_version)}</td>'
            f'<td data-sort="{e.date}">{e.date}</td></tr>')
    out.append("</tbody></table>")
    return "\n".join(out)


def model_page(e: Entry, figures: list[str], twin: Entry | None = None, original: Entry | None = None) -> str:
    """The entry's page: facts, the task table, token pruning, the basis sensitivity against its rotated twin (``twin``,
    or ``original`` for a twin's own page) when the board holds both, and the figures."""
    m, r = e.result.model, e.result
    facts = [("model", m.name), ("kind", m.kind), ("parameters", f"{m.n_params:,}"), ("weights sha256", m.weights_sha256),
             ("layers × width", f"{m.n_layers} × {m.d_model}"), ("rank", f"{e.rank} ({e.group})"),
             ("verdict", None), ("D", with_ci(e.scores.D)), ("C", with_ci(e.scores.C)), ("F", with_ci(e.scores.F)),
             ("fracbench", r.fracbench_version), ("suite", r.suite_version), ("created", r.created.isoformat()),
             ("device, dtype", f"{r.provenance.device}, {r.provenance.dtype}"), ("seeds", json.dumps(r.provenance.seeds, sort_keys=True)),
             ("command", " ".join(r.provenance.command)), ("submission", e.submission)]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{verdict_html(e.scores.verdict, e.scores.reasons) if v is None else escape(v)}</td></tr>"
                   for k, v in facts)
    comp_head = "".join(f"<th>{escape(c)}</th>" for c in COMPONENTS)
    task_rows = []
    for name, v in sorted(e.scores.tasks.items()):
        comps = "".join(f'<td class="num">{"–" if v.components.get(c) is None else f"{v.components[c]:.2f}"}</td>' for c in COMPONENTS)
        task_rows.append(f"<tr><td>{escape(name)}</td><td>{escape(r.tasks[name].version)}</td>"
                         f"{estimate_cell(v.D)}{estimate_cell(v.C)}{estimate_cell(v.F)}{comps}<td>{verdict_html(v.verdict, v.reasons)}</td></tr>")
    body = ['<p><a href="../index.html">← leaderboard</a></p>', f"<h1>{escape(m.name)}</h1>",
            f"<table>{rows}</table>", "<h2>Tasks</h2>",
            f"<table><thead><tr><th>task</th><th>version</th><th>D</th><th>C</th><th>F</th>{comp_head}<th>verdict</th></tr></thead>"
            f"<tbody>{''.join(task_rows)}</tbody></table>",
            "<p>C is the geometric mean of faithfulness, compactness, stress, reuse (the same circuit across prompt lengths and "
            "out of distribution) and selectivity (its margin over the same search for a control task); specificity and ood are "
            "reported, not in C. Every definition is in fracbench's docs/metrics.md.</p>"]
    body += token_pruning_html(e) + basis_html(e, twin, original)
    body += [f'<figure><img src="{escape(f)}" alt="{escape(f.split("-", 1)[1].removesuffix(".png"))} of {escape(m.name)}"></figure>'
             for f in figures]
    return page(f"{m.name}: fracbench", "\n".join(body))


def token_pruning_html(e: Entry) -> list[str]:
    """Which input tokens the prediction needs, per task: precision and recall of the characters greedy pruning keeps
    against the task's evidence, beside chance; empty without token pruning."""
    from ..scoring import token_pruning_scores

    rows = []
    for name, t in sorted(e.result.tasks.items()):
        if t.token_pruning is None:
            continue
        s = token_pruning_scores(t)
        rows.append(f"<tr><td>{escape(name)}</td><td class=\"num\">{len(t.token_pruning.prompts)}</td>"
                    + "".join(estimate_cell(s.get(k)) for k in ("kept_share", "precision", "chance_precision", "recall")) + "</tr>")
    if not rows:
        return []
    return ["<h2>Which input tokens the prediction needs</h2>",
            "<p>Each test prompt's tokens removed greedily while half its logit difference stays; the characters left against "
            "the characters the task says carry the answer (a diagnostic, not in C).</p>",
            "<table><thead><tr><th>task</th><th>prompts</th><th>kept</th><th>precision</th><th>chance precision</th><th>recall</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"]


def basis_html(e: Entry, twin: Entry | None, original: Entry | None) -> list[str]:
    """D and C of the model and of its rotated twin (the same function, the residual stream in a random basis), per task;
    empty unless the board holds both."""
    model, rotated = (original, e) if original is not None else (e, twin)
    if model is None or rotated is None:
        return []
    rows = []
    for name in sorted(set(model.scores.tasks) & set(rotated.scores.tasks)):
        a, b = model.scores.tasks[name], rotated.scores.tasks[name]
        delta = lambda x, y: "–" if x is None or y is None else f"{y.value - x.value:+.2f}"  # noqa: E731
        rows.append(f"<tr><td>{escape(name)}</td>{estimate_cell(a.D)}{estimate_cell(b.D)}<td class=\"num\">{delta(a.D, b.D)}</td>"
                    f"{estimate_cell(a.C)}{estimate_cell(b.C)}<td class=\"num\">{delta(a.C, b.C)}</td></tr>")
    return ["<h2>Basis sensitivity</h2>",
            f"<p>{escape(model.result.model.name)} against its rotated twin {escape(rotated.result.model.name)}: how much of D "
            "and C lives in the residual stream's basis (docs/metrics.md, \"Basis sensitivity\").</p>",
            "<table><thead><tr><th>task</th><th>D model</th><th>D twin</th><th>ΔD</th><th>C model</th><th>C twin</th><th>ΔC</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"]


# -- figures -----------------------------------------------------------------------


def model_figures(e: Entry, directory: Path) -> list[str]:
    """The entry's figures (PNG): decodability by layer and erasure against random subspaces (with probes), robustness
    (with circuits) and reuse across regimes as a matrix (with regime circuits); file names relative to ``directory``."""
    names = []
    tasks = e.result.tasks.values()
    if any(t.probes is not None for t in tasks):
        names.append(plot_decodability(e.result, directory / f"{e.id}-decodability.png").name)
    if any(t.probes is not None and any(lat.erasure is not None for lat in t.probes.latents.values()) for t in tasks):
        names.append(plot_erasure(e.result, directory / f"{e.id}-erasure.png").name)
    if any(t.circuits is not None for t in tasks):
        names.append(plot_coherence(e.result, directory / f"{e.id}-coherence.png").name)
    if any(t.circuits is not None and t.circuits.regimes is not None for t in tasks):
        names.append(plot_reuse(e.result, directory / f"{e.id}-reuse.png").name)
    return names


def plot_scatter(entries: list[Entry], path: Path) -> Path:
    """D against C. Left: one point per submission (means over tasks, 95% intervals); right: one point per
    (submission, task). FRACTURED marked X, partial submissions hollow; a legend names the submissions by color."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [e for e in entries if e.scores.D is not None and e.scores.C is not None]
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT}):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
        for i, e in enumerate(drawn):
            color, D, C = f"C{i % 10}", e.scores.D, e.scores.C
            face = "none" if e.partial else color
            left.errorbar([C.value], [D.value], xerr=[[C.value - C.low], [C.high - C.value]], yerr=[[D.value - D.low], [D.high - D.value]],
                          fmt="X" if e.scores.verdict == "FRACTURED" else "o", color=color, mfc=face, ms=9, capsize=2, lw=0.8,
                          label=e.result.model.name + (" (partial)" if e.partial else ""))
            for task, v in sorted(e.scores.tasks.items()):
                if v.D is not None and v.C is not None:
                    right.scatter([v.C.value], [v.D.value], marker="X" if v.verdict == "FRACTURED" else "o", s=45,
                                  facecolors=face, edgecolors=color, linewidths=1)
        for ax, title in ((left, "per submission: means over tasks"), (right, "per task (X = FRACTURED on that task)")):
            ax.axhline(D_HIGH, color="grey", lw=0.8, ls=":")
            ax.axvline(C_LOW, color="grey", lw=0.8, ls=":")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("coherence C")
            ax.set_title(title, fontsize=9)
        left.set_ylabel("decodability D")
        if drawn:
            left.legend(fontsize=7, loc="lower left", frameon=False)
        fig.suptitle("fracbench: decodable (top) but not coherent (left of C = 0.5) is FRACTURED", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, format="svg", metadata={"Date": None})
        plt.close(fig)
    return path


__all__ = ["SITE", "build_site", "write_site", "plot_scatter", "index_page", "model_page"]
