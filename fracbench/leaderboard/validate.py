"""Validating a submitted results file: the schema, the suite and task versions, and every score recomputed.

A board that believes submitted numbers can be gamed; this one recomputes D, C, F, the components and
the verdict of every task from the file's raw per-item numbers with fracbench's own scoring code and
refuses any stored value that differs by more than ``TOLERANCE``, naming the field. The document is
data only: nothing in it is executed or used as a path. The same function serves the submitter and
the board, so a submitter sees exactly the reasons the board would give.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from pydantic import ValidationError

from ..circuits.control import control_flips
from ..config import DEFAULT_RANKING
from ..circuits.regimes import SHORT_PROMPT_CHARS, is_short, ood_pool
from ..results import RunResult, results_json, validation_problems
from ..scoring import STRESS_KINDS, Estimate, Verdict, ood_faithfulness, scores_version, verdict
from ..tasks import SUITE_VERSION, TASKS
from ..tasks.base import CUE_SPLITS

MAX_SUBMISSION_BYTES = 64 * 2**20  # as submitted and as JSON once decompressed; a full zoo run is under 1 MB in xz, 5 MB as JSON
TOLERANCE = 1e-6  # the largest difference allowed between a stored score and its recomputation
# scores version 3 needs what schema 6 records (cue splits, each test example's cue) and the search restarts of schema 7, which
# C's interval holds; the board takes schema 8 and 9, whose ablation means leave BOS out (every entry measured the same way;
# 9 adds the latents' erasure, which no board score reads yet)
# scores version 4 needs the circuit control task and the regime circuits (schema 10); version 5 (schema 11) reports the
# smallest restart; schema 12 adds the run's configuration and is scored as 11; schema 13 (scores version 6) reads
# intervals strictly. The project board was rerun at schema 13 on 2026-12-07, so it takes 13 alone: every entry is
# scored by one rule (version 6)
BOARD_SCHEMA_VERSIONS = ("13",)
MIN_RESTARTS = 5  # a searched circuit's restarts on the board (fracbench run's default): fewer would narrow C's interval
REQUIRED_SECTIONS = ("probes", "circuits", "scores")  # per task: what D, C and the verdict are recomputed from


@dataclass(frozen=True)
class Problem:
    """One reason a submission is refused: where (a dotted field path) and what to fix."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Validation:
    result: RunResult | None  # the parsed document, None when it could not be parsed
    problems: list[Problem] = field(default_factory=list)
    partial: bool = False  # a subset of the suite's tasks (ranked separately)
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # task -> its recomputed scores (empty until recomputed)

    @property
    def accepted(self) -> bool:
        return self.result is not None and not self.problems


def validate_submission(raw: bytes) -> Validation:
    """Every check, in order; a later check runs only on what the earlier ones let through."""
    if too_big := size_problems(len(raw)):
        return Validation(None, too_big)
    try:
        raw = results_json(raw, limit=MAX_SUBMISSION_BYTES)
    except ValueError as err:
        return Validation(None, [Problem("<file>", str(err))])
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as err:
        return Validation(None, [Problem("<file>", f"is not JSON: {err}")])
    except RecursionError:
        return Validation(None, [Problem("<file>", "nests too deeply to be a results file")])
    if not isinstance(data, dict):
        return Validation(None, [Problem("<file>", f"holds a JSON {type(data).__name__}; a results file is an object")])
    version = data.get("schema_version")
    if version not in BOARD_SCHEMA_VERSIONS:
        return Validation(None, [Problem("schema_version", f"is {version!r}; the board takes schema_version {', '.join(BOARD_SCHEMA_VERSIONS)} "
                                         "(rerun with this fracbench, or read the file with it and write it again)")])
    try:
        result = RunResult.model_validate_json(raw, strict=True)  # strict: no true for a number, no "1" for an int
    except ValidationError as err:
        return Validation(None, [Problem(where, what) for where, what in validation_problems(err)])
    problems, verdicts = _versions(result) + _sections(result), {}
    if not problems:
        try:
            verdicts = {name: verdict(result, name) for name in result.tasks}
            problems = _recomputed(result, verdicts)
        except (ArithmeticError, ValueError, KeyError, IndexError) as err:  # a schema-valid file scoring cannot read
            problems = [Problem("<document>", f"could not be scored ({type(err).__name__}: {err}); rerun fracbench on the model")]
    return Validation(result, problems, partial=set(result.tasks) != set(TASKS.names()), verdicts=verdicts)


def size_problems(size: int) -> list[Problem]:
    """The refusal of a file of ``size`` bytes, if it is over the limit (checkable before reading the file)."""
    if size > MAX_SUBMISSION_BYTES:
        return [Problem("<file>", f"is {size:,} bytes; the board takes at most {MAX_SUBMISSION_BYTES:,} "
                        f"(a full run at the default --n 512 is under 1 MB as fracbench writes it, .json.xz)")]
    return []


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number the board takes (NaN and infinities are refused)")


def _versions(result: RunResult) -> list[Problem]:
    problems = []
    if result.suite_version != SUITE_VERSION:
        problems.append(Problem("suite_version", f"is {result.suite_version!r}; the board ranks suite {SUITE_VERSION!r}"))
    for name, task in result.tasks.items():
        if name not in TASKS:
            problems.append(Problem(f"tasks.{name}", f"is not a task of suite {SUITE_VERSION}: {', '.join(TASKS.names())}"))
        elif task.version != TASKS[name].version:
            problems.append(Problem(f"tasks.{name}.version", f"is {task.version!r}; suite {SUITE_VERSION} has version {TASKS[name].version!r}"))
    if not result.tasks:
        problems.append(Problem("tasks", "is empty; submit at least one task"))
    config = result.provenance.config
    if config is not None and config.ranking != DEFAULT_RANKING:
        problems.append(Problem("provenance.config.ranking", f"is {config.ranking!r}; the board compares circuits cut "
                                f"from learned masks (run with --ranking {DEFAULT_RANKING}): another ranking gives other circuits"))
    return problems


def _sections(result: RunResult) -> list[Problem]:
    """Everything the scores are computed from must be there: leaving out a hard latent, an OOD split or a stress
    curve would otherwise drop it from D or C's mean and raise the score."""
    problems = [Problem(f"tasks.{name}.{section}", "is missing; run without --no-probes and --no-circuits")
                for name, task in result.tasks.items() for section in REQUIRED_SECTIONS if getattr(task, section) is None]
    for name, t in result.tasks.items():
        if name not in TASKS or problems:
            continue
        spec, where = TASKS[name], f"tasks.{name}"
        ood = [s.name for s in spec.splits() if s.is_ood]
        problems += [Problem(f"{where}.behaviour", f"has no split {s!r}; every split of the task is scored")
                     for s in ["test", *CUE_SPLITS, *ood] if s not in t.behaviour]
        problems += [Problem(f"{where}.probes.latents", f"has no latent {lat.name!r} and it is not in probes.skipped; "
                             "D is the mean over every latent of the task that can be probed")
                     for lat in spec.latents if lat.name not in t.probes.latents and lat.name not in t.probes.skipped]
        if t.circuits.search_sufficiency is None:
            continue  # no behaviour to explain: no circuit, no stress, no OOD circuit tests
        problems += [Problem(f"{where}.circuits.ood", f"has no split {s!r}; C's ood component covers every OOD split")
                     for s in ood if s not in t.circuits.ood]
        if len(t.circuits.restarts) < MIN_RESTARTS:
            problems.append(Problem(f"{where}.circuits.restarts", f"has {len(t.circuits.restarts)} search restarts; the board takes at "
                                    f"least {MIN_RESTARTS} (run with --restarts {MIN_RESTARTS} or more): C's interval holds their spread"))
        if t.stress is None:
            problems.append(Problem(f"{where}.stress", "is missing, but a circuit was searched; C's stress component needs it"))
        else:
            optional = {"weight_noise"} if t.circuits.n_edges is None else set()  # an adapter without weights has no weight noise
            problems += [Problem(f"{where}.stress.{kind}", "is missing; C's stress component averages every kind the model allows")
                         for kind in STRESS_KINDS if getattr(t.stress, kind) is None and kind not in optional]
        problems += _issue_14_sections(result, name)
    return problems


def _issue_14_sections(result: RunResult, name: str) -> list[Problem]:
    """The control task and the regimes are present and are the ones fracbench draws: the prompts' length flags and the
    control's labels are recomputed from the task's test prompts (the run's seed), and the pooled OOD prompts are the
    usable splits' share by scoring's rule; leaving out a regime or choosing its prompts would change reuse."""
    t, where = result.tasks[name], f"tasks.{name}.circuits"
    c = t.circuits
    problems = [Problem(f"{where}.{section}", "is missing, but a circuit was searched; C's "
                        f"{'selectivity' if section == 'control' else 'reuse'} component needs it")
                for section in ("control", "regimes") if getattr(c, section) is None]
    if problems:
        return problems
    seed, test = result.provenance.seeds.get("examples"), t.behaviour["test"]
    examples = TASKS[name].examples("test", test.n, seed) if isinstance(seed, int) else None
    if examples is None or c.control.flip != control_flips(TASKS[name], examples, result.provenance.seeds.get("circuits", seed)):
        problems.append(Problem(f"{where}.control.flip", "is not the control labels fracbench draws for these test prompts and seed"))
    g = c.regimes
    if g.short_chars != SHORT_PROMPT_CHARS or examples is None or g.short != [is_short(ex) for ex in examples]:
        problems.append(Problem(f"{where}.regimes.short", f"does not flag the test prompts under {SHORT_PROMPT_CHARS} characters"))
    problems += [Problem(f"{where}.regimes.circuits", f"has no {regime!r} regime; reuse's length axis needs it")
                 for regime in ("short", "long") if regime not in g.circuits]
    usable = ood_faithfulness(t, n_bootstrap=1).used
    if [tuple(p) for p in g.ood_prompts] != ood_pool(usable, test.n) or ("ood" in g.circuits) != bool(usable):
        problems.append(Problem(f"{where}.regimes.ood_prompts", f"are not the usable OOD splits' share ({', '.join(usable) or 'none usable'})"))
    return problems


def _recomputed(result: RunResult, verdicts: dict[str, Verdict]) -> list[Problem]:
    problems = []
    for name, task in result.tasks.items():
        stored, where = task.scores, f"tasks.{name}.scores"
        if stored.version != scores_version(result):
            problems.append(Problem(f"{where}.version", f"is {stored.version!r}; the board scores schema_version "
                                    f"{result.schema_version} with scores version {scores_version(result)!r}"))
            continue
        v = verdicts[name]
        for key, mine in (("D", v.D), ("C", v.C), ("F", v.F), ("cue_reliance", v.cue_reliance), ("G", v.G)):
            problems += _compare_estimate(f"{where}.{key}", getattr(stored, key), mine)
        for key, mine in v.components.items():
            problems += _compare_number(f"{where}.components.{key}", stored.components.get(key), mine)
        if stored.verdict != v.verdict or stored.reasons != v.reasons or stored.relies_on_cue != v.relies_on_cue:
            problems.append(Problem(f"{where}.verdict", f"is {stored.verdict!r} {stored.reasons}; recomputed: {v.verdict!r} {v.reasons}"))
    return problems


def _compare_estimate(where: str, stored, mine: Estimate | None) -> list[Problem]:
    if (stored is None) != (mine is None):
        return [Problem(where, f"is {'missing' if stored is None else 'present'}; recomputed: {mine if mine is not None else None}")]
    if stored is None:
        return []
    return [p for key in ("value", "low", "high") for p in _compare_number(f"{where}.{key}", getattr(stored, key), getattr(mine, key))]


def _compare_number(where: str, stored: float | None, mine: float | None) -> list[Problem]:
    if stored is None and mine is None:
        return []
    if stored is None or mine is None or not math.isclose(stored, mine, rel_tol=0.0, abs_tol=TOLERANCE):
        return [Problem(where, f"is {stored}; recomputed from the file's raw numbers: {mine}")]
    return []
