"""The ranking: every entry of a board, re-validated and scored, as rows, leaderboard.json and leaderboard.md.

Scores are always the ones recomputed from the submissions' raw numbers, never the stored ones. Full-suite
entries and partial ones are ranked separately, each by mean coherence C (highest first; entries without C
last), ties broken by model name and then by submission.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..results import RunResult
from ..scoring import Estimate, ModelScores, Verdict, model_scores, scores_versions
from ..tasks import SUITE_VERSION
from .store import Refused, inspect_board
from .validate import BOARD_SCHEMA_VERSIONS, Problem

ID_LENGTH = 16  # hex digits of the submission's sha256 that name its page


@dataclass(frozen=True)
class Entry:
    """One accepted submission, with its recomputed scores."""

    submission: str  # the file name on the board: <sha256>.json
    result: RunResult
    scores: ModelScores
    partial: bool
    rank: int = 0  # 1-based, within its group (full or partial)

    @property
    def id(self) -> str:
        """The page name: a prefix of the content hash, so nothing from the document reaches a path."""
        return self.submission[:ID_LENGTH]

    @property
    def group(self) -> str:
        return "partial" if self.partial else "full"

    @property
    def date(self) -> str:
        return self.result.created.date().isoformat()


def load_board(board: str | Path) -> list[Entry]:
    """Every entry of ``board``, ranked; raises :class:`Refused` naming each bad entry when the board does not check."""
    validations, bad = inspect_board(board)
    if bad:
        raise Refused([Problem(f"{name}:{p.field}", p.message) for name, problems in sorted(bad.items()) for p in problems])
    return ranked([Entry(name, v.result, model_scores(v.result, verdicts=v.verdicts), v.partial) for name, v in validations.items()])


def ranked(items: list[Entry]) -> list[Entry]:
    """Full entries first, then partial ones; within each, by C (highest first), model name, submission."""
    out = []
    for partial in (False, True):
        group = sorted((e for e in items if e.partial == partial),
                       key=lambda e: (e.scores.C is None, -(e.scores.C.value if e.scores.C else 0.0), e.result.model.name, e.submission))
        out += [Entry(e.submission, e.result, e.scores, e.partial, rank) for rank, e in enumerate(group, start=1)]
    return out


# leaderboard.json's numbers, to this many decimals: the same submissions scored on another CPU differed in the last
# bit (a bootstrap bound, 0.4768345249074071 vs ...070: numpy's vectorized sums follow the CPU's instruction set), and
# the committed site must be what any machine builds; the submissions keep full precision
DECIMALS = 9


def _rounded(x: float) -> float:
    return round(x, DECIMALS)


def estimate_json(e: Estimate | None) -> dict[str, float] | None:
    return None if e is None else {"value": _rounded(e.value), "low": _rounded(e.low), "high": _rounded(e.high)}


def task_json(v: Verdict) -> dict:
    components = {name: None if c is None else _rounded(c) for name, c in v.components.items()}
    return {"D": estimate_json(v.D), "C": estimate_json(v.C), "F": estimate_json(v.F), "components": components,
            "verdict": v.verdict, "reasons": list(v.reasons)}


def leaderboard_json(board: list[Entry]) -> dict:
    """The whole board as one JSON document (what leaderboard.json holds): nothing time- or machine-dependent."""
    return {
        "suite_version": SUITE_VERSION,
        "schema_versions": list(BOARD_SCHEMA_VERSIONS),
        "scores_version": scores_versions([e.result for e in board]),
        "ranking": "full-suite entries, then partial ones; each group by mean C, highest first",
        "entries": [{
            "rank": e.rank,
            "group": e.group,
            "id": e.id,
            "submission": e.submission,
            "model": e.result.model.model_dump(mode="json"),
            "tasks": sorted(e.result.tasks),
            "D": estimate_json(e.scores.D),
            "C": estimate_json(e.scores.C),
            "F": estimate_json(e.scores.F),
            "verdict": e.scores.verdict,
            "reasons": list(e.scores.reasons),
            "per_task": {name: task_json(v) for name, v in sorted(e.scores.tasks.items())},
            "fracbench_version": e.result.fracbench_version,
            "created": e.result.created.isoformat(),
        } for e in board],
    }


def with_ci(e: Estimate | None) -> str:
    return "–" if e is None else f"{e.value:.2f} [{e.low:.2f}, {e.high:.2f}]"


def n_params(n: int) -> str:
    """1234567 -> '1.2M': parameter counts at a glance."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def markdown_text(text: str) -> str:
    """Free text (a model name) as inert Markdown: markup characters escaped, HTML turned into entities."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|#":
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())  # no newline can end the table row


def leaderboard_markdown(board: list[Entry]) -> str:
    """The ranking as Markdown tables (what leaderboard.md holds)."""
    lines = [f"# fracbench leaderboard (suite {SUITE_VERSION}, scores version {scores_versions([e.result for e in board])})", "",
             "Every score is recomputed from the submission's raw numbers. D, C and F are means over the entry's tasks, "
             "with 95% bootstrap intervals; the verdict is the task label a majority of the tasks hold (docs/metrics.md)."]
    for group, title in (("full", "Full suite"), ("partial", "Partial submissions (a subset of the tasks)")):
        rows = [e for e in board if e.group == group]
        if not rows:
            continue
        lines += ["", f"## {title}", "", "| # | model | kind | params | D | C | F | verdict | tasks | fracbench | date |",
                  "|---:|---|---|---:|---|---|---|---|---|---|---|"]
        for e in rows:
            m = e.result.model
            verdict = f"**{e.scores.verdict}**" if e.scores.verdict == "FRACTURED" else e.scores.verdict
            reasons = markdown_text("; ".join(e.scores.reasons))
            lines.append(f"| {e.rank} | {markdown_text(m.name)} | {markdown_text(m.kind)} | {n_params(m.n_params)} | {with_ci(e.scores.D)} | "
                         f"{with_ci(e.scores.C)} | {with_ci(e.scores.F)} | {verdict}{': ' + reasons if reasons else ''} | "
                         f"{len(e.result.tasks)} | {markdown_text(e.result.fracbench_version)} | {e.date} |")
    if not board:
        lines += ["", "No submissions yet."]
    return "\n".join(lines) + "\n"


def sort_key(e: Estimate | None) -> str:
    """A table cell's sort value: the point estimate, or empty (sorted last) when undefined."""
    return "" if e is None or math.isnan(e.value) else repr(e.value)
