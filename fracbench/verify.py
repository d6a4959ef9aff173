"""Verifying a claim: rerun a seeded sample of a results file's tasks on the named model with the file's own
settings, and check, per task and metric, that the rerun lands inside the claim's 95% interval.

A leaderboard recomputes scores from the submitted raw numbers; that proves the numbers are consistent, not
that the model produced them. This is the second half: anyone holding the weights can rerun the claim.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .models import resolve_model
from .results import RunResult
from .config import ABLATIONS, DEFAULT_ABLATION, DEFAULT_RESTARTS, RunConfig
from .runner import run
from .scoring import Estimate, verdict

METRICS = ("D", "C", "F")
SLACK = 1e-6  # the interval is widened by this much (the board's recomputation tolerance)
DEFAULT_SAMPLE = 2  # tasks rerun when none are named


@dataclass(frozen=True)
class Check:
    """One claimed number (or the verdict) against its rerun."""

    task: str
    metric: str  # "D", "C", "F" or "verdict"
    claimed: str  # as printed: "0.83 [0.80, 0.86]" or the verdict
    measured: str
    reproduced: bool  # the rerun is inside the claim's interval (the verdict: the same)
    exact: bool  # the rerun equals the claim within SLACK: expected with the same seed, code and device


@dataclass(frozen=True)
class Verification:
    model: str  # the spec that was rerun
    weights_match: bool  # the spec's weights hash to the claim's model.weights_sha256
    tasks: list[str]  # the tasks rerun
    checks: list[Check]
    rerun: Path | None  # the rerun's results file (None when nothing was rerun)

    @property
    def reproduced(self) -> bool:
        return self.weights_match and bool(self.checks) and all(c.reproduced for c in self.checks)


def sample_tasks(claim: RunResult, k: int, seed: int) -> list[str]:
    """``k`` of the claim's tasks, drawn with ``seed`` (all of them when ``k`` is at least their number), in name order."""
    names = sorted(claim.tasks)
    if k < 1:
        raise ValueError(f"--sample must be at least 1, not {k}")
    return sorted(random.Random(seed).sample(names, min(k, len(names))))


def verify(claim: RunResult, model_spec: str, tasks: list[str] | None = None, sample: int = DEFAULT_SAMPLE, sample_seed: int = 0,
           device: str = "cpu", out_dir: str | Path | None = None, progress: bool = True) -> Verification:
    """Rerun ``tasks`` (default: a seeded sample of ``sample`` of the claim's tasks) of ``claim`` on ``model_spec``."""
    chosen = sample_tasks(claim, sample, sample_seed) if tasks is None else tasks
    unknown = [t for t in chosen if t not in claim.tasks]
    if unknown:
        raise KeyError(f"the claim has no task {unknown[0]!r}; it has: {', '.join(sorted(claim.tasks))}")
    missing = [t for t in chosen if claim.tasks[t].probes is None or claim.tasks[t].circuits is None]
    if missing:
        raise ValueError(f"task {missing[0]!r} of the claim has no probes or circuits: there are no D and C to verify")
    spec = resolve_model(model_spec, claim.provenance.dtype)
    weights = spec.load(device).info.weights_sha256
    if weights != claim.model.weights_sha256:
        return Verification(model_spec, False, chosen, [], None)
    first = claim.tasks[chosen[0]]
    settings = dict(n_test=first.behaviour["test"].n, n_train=first.n_examples["train"], seed=claim.provenance.seeds["examples"],
                    batch_size=claim.provenance.batch_size, dtype=claim.provenance.dtype, restarts=claimed_restarts(claim, chosen),
                    ablation=claimed_ablation(claim, chosen))
    for name in chosen:  # one run: every task must share the settings
        t = claim.tasks[name]
        if (t.behaviour["test"].n, t.n_examples["train"]) != (settings["n_test"], settings["n_train"]):
            raise ValueError(f"task {name!r} was run with other example counts than {chosen[0]!r}; verify them separately (--tasks)")
    with tempfile.TemporaryDirectory() as scratch:
        rerun, path = run(model_spec, RunConfig(tasks=chosen, device=device, **settings), out_dir if out_dir is not None else scratch,
                          progress=progress, command=["fracbench", "verify"])
        kept = path if out_dir is not None else None
    checks = []
    for name in chosen:
        mine, theirs = verdict(rerun, name), verdict(claim, name)
        for metric in METRICS:
            checks.append(compare(name, metric, getattr(theirs, metric), getattr(mine, metric)))
        same = theirs.verdict == mine.verdict and theirs.reasons == mine.reasons
        checks.append(Check(name, "verdict", theirs.verdict, mine.verdict, theirs.verdict == mine.verdict, same))
    return Verification(model_spec, True, chosen, checks, kept)


def claimed_ablation(claim: RunResult, tasks: list[str]) -> str:
    """The ablation the claim's circuits were measured with; one this version no longer computes is an error."""
    kinds = {c.ablation for t in tasks if (c := claim.tasks[t].circuits) is not None}
    if len(kinds) > 1:
        raise ValueError(f"the claim's tasks {', '.join(tasks)} were measured with different ablations; verify them separately (--tasks)")
    kind = kinds.pop() if kinds else DEFAULT_ABLATION
    if kind not in ABLATIONS:
        raise ValueError(f"the claim's circuits were measured with the {kind!r} ablation (schema_version {claim.schema_version}), which "
                         f"this fracbench no longer computes ({', '.join(ABLATIONS)}); rerun the model with `fracbench run` instead")
    return kind


def claimed_restarts(claim: RunResult, tasks: list[str]) -> int:
    """The claim's number of search restarts (its searched circuits' restarts; 1 in an older schema's file)."""
    counts = {len(c.restarts) or 1 for t in tasks if (c := claim.tasks[t].circuits) is not None and c.search_sufficiency is not None}
    if len(counts) > 1:
        raise ValueError(f"the claim's tasks {', '.join(tasks)} were searched with different numbers of restarts; verify them separately (--tasks)")
    return counts.pop() if counts else DEFAULT_RESTARTS


def compare(task: str, metric: str, claimed: Estimate | None, measured: Estimate | None) -> Check:
    """Reproduced: both undefined, or the rerun's point estimate inside the claim's interval."""
    if claimed is None or measured is None:
        both = claimed is None and measured is None
        return Check(task, metric, _show(claimed), _show(measured), both, both)
    inside = claimed.low - SLACK <= measured.value <= claimed.high + SLACK
    return Check(task, metric, _show(claimed), f"{measured.value:.4f}", inside, abs(measured.value - claimed.value) <= SLACK)


def _show(e: Estimate | None) -> str:
    return "undefined" if e is None else f"{e.value:.4f} [{e.low:.4f}, {e.high:.4f}]"
