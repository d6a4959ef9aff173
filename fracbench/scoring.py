"""Scores computed from results files: decodability D, coherence C, the fracture gap F = D - C
and the verdict.

Reads only :mod:`fracbench.results` objects, never a model, so the leaderboard recomputes
every score from a submitted file's raw per-row numbers instead of trusting it. Pure
functions, deterministic: the bootstrap is seeded. Definitions, with references, are in
``docs/metrics.md`` ("Decodability D", "Coherence C", "Verdict").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .results import LatentErasure, LatentProbes, ProbeSection, RunResult, TaskResult
from .results.coherence import (COHERENT, DOES_NOT_DECODE, FRACTURED, INCONCLUSIVE, NO_BEHAVIOUR, NOT_SCORED, CircuitSection,
                                FaithfulnessCurve, VerdictLabel)

D_VERSION = "3"  # the definition of D: 0 = DESIGN.md's v0 (control-task subtraction), 1 = above max(chance, lexical),
# 2 = above max(chance, lexical, the untrained twin's probe), 3 = 2 on cue-random fit and test rows, with D per
# cue stratum (docs/metrics.md, "Decodability D")
N_BOOTSTRAP = 1000  # bootstrap replicates for every confidence interval
BOOTSTRAP_SEED = 0  # seed of the resampling: every reader draws the same replicates
CI_PERCENTILES = (2.5, 97.5)  # a 95% percentile interval


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap percentile interval."""

    value: float
    low: float  # 2.5th percentile of the bootstrap replicates
    high: float  # 97.5th percentile


@dataclass(frozen=True)
class LatentDecodability:
    """One latent's decodability, read at its best site on the test rows."""

    site: str  # the best site (chosen on validation rows, never on test)
    chance: float  # c: accuracy of always predicting the fit rows' majority class, on the test rows
    accuracy: Estimate  # the real probe's test accuracy
    lexical: Estimate  # b: the lexical (token identity only) baseline's test accuracy
    untrained: Estimate | None  # u: the untrained twin's probe's test accuracy (None: not measured)
    d: Estimate  # clip(normalized(accuracy, max(c, b, u)), 0, 1)
    control_accuracy: Estimate  # diagnostic, not in d: the control probe's test accuracy (Hewitt & Liang 2019)
    selectivity: Estimate  # diagnostic, not in d: accuracy - control_accuracy

    @property
    def floor(self) -> float:
        """``max(chance, lexical, untrained)``: the accuracy a probe gets without reading anything training put there."""
        return max(self.chance, self.lexical.value, self.untrained.value if self.untrained is not None else 0.0)


@dataclass(frozen=True)
class Decodability:
    """A task's decodability: D = mean over latents of d, with a joint bootstrap interval."""

    D: Estimate
    latents: dict[str, LatentDecodability]
    n_bootstrap: int
    seed: int
    version: str = D_VERSION  # the definition of D that computed it
    replicates: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)  # [B] D per replicate, NaN where dropped
    # D on the test examples whose spurious cue agreed with the answer / did not ("cue agrees", "cue disagrees"):
    # a diagnostic; a gap says the probe reads the cue. Empty when the file does not record the cue.
    strata: dict[str, Estimate] = field(default_factory=dict)


def normalized(accuracy, floor):
    """``(accuracy - floor) / (1 - floor)``: 0 at the floor, 1 when perfect; 0 when the floor is 1
    (nothing is left above it to show). Floats or numpy arrays (the bootstrap replicates)."""
    below_one = np.asarray(floor) < 1.0
    value = np.where(below_one, (np.asarray(accuracy) - floor) / np.where(below_one, 1.0 - np.asarray(floor), 1.0), 0.0)
    return float(value) if value.ndim == 0 else value


def selectivity(accuracy: float, control_accuracy: float) -> float:
    """Hewitt & Liang's selectivity, ``accuracy - control_accuracy``: a diagnostic of the probe, not in D."""
    return accuracy - control_accuracy


def latent_d(accuracy, chance, lexical, untrained=0.0):
    """A latent's decodability: the probe's accuracy normalized above ``max(chance, lexical, untrained)``, clipped
    to [0, 1] (``untrained`` 0 when the twin was not measured). Floats or numpy arrays (the bootstrap replicates)."""
    value = np.clip(normalized(accuracy, np.maximum(np.maximum(chance, lexical), untrained)), 0.0, 1.0)
    return float(value) if np.ndim(value) == 0 else value


def decodability(section: ProbeSection, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> Decodability:
    """D of one task from its probe section, with 95% percentile intervals from a cluster bootstrap.

    Per latent, at its best site: ``d = clip((acc - floor) / (1 - floor), 0, 1)`` with
    ``floor = max(chance, lexical, untrained)`` (0 when the floor is 1); D is the mean of d over latents.

    Each replicate resamples the ``n_test_examples`` test examples with replacement and
    takes every row of each drawn example (rows of one example are correlated), the same
    draw for every latent, so D's interval is joint. Replicates in which some latent has
    no rows are dropped (possible only with very few examples). Where the file records each
    test example's cue, D is also computed on each cue stratum (the same draws, the other
    stratum's examples weighted 0).
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    n = section.n_test_examples
    weights = _weights(n, n_bootstrap, seed)
    D, latents, all_reps = _decodability_on(section, weights, n)
    strata = {}
    if section.test_cue_agrees is not None:
        agrees = np.frombuffer(section.test_cue_agrees.encode("ascii"), dtype=np.uint8) == ord("1")
        for name, members in (("cue agrees", agrees), ("cue disagrees", ~agrees)):
            if members.any():
                mask = members.astype(np.int64)
                stratum, _, _ = _decodability_on(section, np.vstack([mask, weights * mask]), n, point_row=True)
                strata[name] = stratum
    return Decodability(D=D, latents=latents, n_bootstrap=n_bootstrap, seed=seed, replicates=all_reps, strata=strata)


def _decodability_on(section: ProbeSection, weights: np.ndarray, n: int,
                     point_row: bool = False) -> tuple[Estimate, dict[str, LatentDecodability], np.ndarray]:
    """D, each latent's decodability and D's replicates from ``weights`` [B, n] (how often each test example is
    drawn in each replicate). The point estimates are the stored accuracies, or with ``point_row`` the first
    row's (a stratum: 0/1 marking its examples; the other rows are its replicates)."""
    per_latent = {name: _replicates(latent, weights, n) for name, latent in section.latents.items()}
    if point_row:
        points = {name: {k: v[0] for k, v in r.items()} for name, r in per_latent.items()}
        per_latent = {name: {k: v[1:] for k, v in r.items()} for name, r in per_latent.items()}
    n_bootstrap = len(weights) - point_row
    valid = np.logical_and.reduce([r["valid"] for r in per_latent.values()]) if per_latent else np.ones(n_bootstrap, bool)
    latents = {}
    for name, latent in section.latents.items():
        probes = latent.sites[latent.best_site]
        acc, ctrl, lex = probes.test.accuracy, probes.control_test.accuracy, latent.lexical.accuracy
        untrained = latent.untrained.test.accuracy if latent.untrained is not None else 0.0
        chance = latent.chance
        if point_row:
            p = points[name]
            acc, ctrl, lex, untrained, chance = p["accuracy"], p["control"], p["lexical"], p["untrained"], p["chance"]
        r = per_latent[name]
        latents[name] = LatentDecodability(
            site=latent.best_site,
            chance=float(chance),
            accuracy=_estimate(acc, r["accuracy"][valid]),
            lexical=_estimate(lex, r["lexical"][valid]),
            untrained=_estimate(untrained, r["untrained"][valid]) if latent.untrained is not None else None,
            d=_estimate(latent_d(acc, chance, lex, untrained), r["d"][valid]),
            control_accuracy=_estimate(ctrl, r["control"][valid]),
            selectivity=_estimate(selectivity(acc, ctrl), r["selectivity"][valid]),
        )
    if latents:
        D_value = float(np.mean([lat.d.value for lat in latents.values()]))
        all_reps = np.where(valid, np.mean([r["d"] for r in per_latent.values()], axis=0), np.nan)
    else:
        D_value, all_reps = 0.0, np.full(n_bootstrap, np.nan)
    return _estimate(D_value, all_reps[valid]), latents, all_reps


def run_decodability(result: RunResult, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict[str, Decodability]:
    """D for every task of ``result`` that has a probe section (tasks run with --no-probes have none)."""
    return {name: decodability(t.probes, n_bootstrap, seed) for name, t in result.tasks.items() if t.probes is not None}


def _replicates(latent: LatentProbes, weights: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Bootstrap replicates [B] of one latent's accuracy, baselines, d, control accuracy and selectivity;
    chance and the baselines are recomputed on each replicate's rows like the accuracy."""
    probes = latent.sites[latent.best_site]
    examples = np.asarray(latent.test_examples)

    def per_example(flags: np.ndarray) -> np.ndarray:  # [n]: the flags summed over each example's rows
        return np.bincount(examples, weights=flags, minlength=n)

    rows = weights @ per_example(np.ones(len(examples)))
    valid = rows > 0
    safe = np.where(valid, rows, 1.0)
    acc = weights @ per_example(_flags(probes.test.correct)) / safe
    ctrl = weights @ per_example(_flags(probes.control_test.correct)) / safe
    lexical = weights @ per_example(_flags(latent.lexical.correct)) / safe
    chance = weights @ per_example((np.asarray(latent.test_labels) == latent.majority_class).astype(float)) / safe
    untrained = weights @ per_example(_flags(latent.untrained.test.correct)) / safe if latent.untrained is not None else np.zeros(len(acc))
    return {"valid": valid, "accuracy": acc, "lexical": lexical, "untrained": untrained, "d": latent_d(acc, chance, lexical, untrained),
            "control": ctrl, "selectivity": acc - ctrl, "chance": chance}


def _flags(correct: str) -> np.ndarray:
    return np.frombuffer(correct.encode("ascii"), dtype=np.uint8) - ord("0")


def _estimate(value: float, replicates: np.ndarray) -> Estimate:
    """The value with the 95% percentile interval of its replicates; replicates left undefined (NaN) are dropped."""
    replicates = np.asarray(replicates, dtype=float)
    replicates = replicates[~np.isnan(replicates)]
    if len(replicates) == 0:
        return Estimate(value, value, value)
    low, high = np.percentile(replicates, CI_PERCENTILES)
    return Estimate(float(value), float(low), float(high))


# -- coherence ---------------------------------------------------------------------

SCORES_VERSION = "6"  # the definitions of C's components, C, F, cue reliance and the verdicts below (6: strict intervals)
# Older files keep the version they were written under (docs/metrics.md): schema 7-10 reported the median restart and
# are scored by version 4's restart draw; schema 11-12 by version 5 (the smallest restart; verdicts read ">=" where
# version 6 reads ">", and a reuse direction needs only o > r at the point estimate).


def scores_version(result: RunResult) -> str:
    """The scores version ``result`` is scored under: 6 from schema 13 on, 5 for schema 11 and 12, else 4 (docs/metrics.md,
    "Scores version 5" and "Scores version 6")."""
    return SCORES_VERSION if result.since(13) else "5" if result.since(11) else "4"


def strict_intervals(result: RunResult) -> bool:
    """Whether ``result`` is scored by version 6's rules: a verdict needs its interval to exclude the threshold, and a
    reuse direction needs the interval of o - r above 0."""
    return result.since(13)


def scores_versions(results: Sequence[RunResult]) -> str:
    """The scores versions ``results`` are scored under, for a table's caption: e.g. "5", or "4 and 5" for a mix."""
    return " and ".join(sorted({scores_version(r) for r in results})) or SCORES_VERSION


MIN_EFFECT = 0.5  # logits: below this m(M) - m(empty) there is no behaviour to normalize by (circuits.faithfulness)
CHANCE = 0.5  # every task is a binary choice
COMPONENTS = ("faithfulness", "compactness", "stress", "reuse", "selectivity", "specificity", "ood")  # reported
DIAGNOSTICS = ("cpr", "cmd", "necessity_margin", "restart_jaccard", "reuse_length", "reuse_ood", "jaccard_length", "jaccard_ood",
               "control_share")  # reported with the components, never in C (docs/metrics.md)
STRESS_KINDS = ("activation_noise", "dropout", "weight_noise", "distractors")
# C's geometric mean leaves out specificity, a diagnostic for now: on the dense zoo model ablating any
# task's circuit removes at least 90% of every other task's logit difference too (docs/metrics.md), so
# specificity is 0 for every task and would zero C everywhere, saying nothing about which model is coherent.
# Scores version 4 leaves out ood too: it is one direction of reuse's ood axis without the random baseline.
IN_C = ("faithfulness", "compactness", "stress", "reuse", "selectivity")
@dataclass(frozen=True)
class Thresholds:
    """The verdict's thresholds, all of them (docs/metrics.md, "Verdict"; the sensitivity table varies each)."""

    D_high: float = 0.5  # D's 95% interval above this: the latents decode (and OOD, D there at least this); below: they do not
    C_low: float = 0.5  # C's 95% interval below this (D's above D_high): FRACTURED; above it: coherent; across it: inconclusive
    component_low: float = 0.5  # a component below this is named among the verdict's reasons
    cue_reliance_min: float = 0.05  # cue reliance's 95% lower bound above this (accuracy, agree minus flipped): relies on its cue
    model_majority: float = 0.5  # a model takes a task label held by more than this share of its tasks, else inconclusive
    erasure_unused_max: float = 0.1  # erasure gap's 95% upper bound below this: the latent is decoded but not used there
    # (a diagnostic beside the verdict, not in it)


THRESHOLDS = Thresholds()
D_HIGH, C_LOW, COMPONENT_LOW = THRESHOLDS.D_high, THRESHOLDS.C_low, THRESHOLDS.component_low
CUE_RELIANCE_MIN, MODEL_MAJORITY = THRESHOLDS.cue_reliance_min, THRESHOLDS.model_majority


@dataclass(frozen=True)
class Coherence:
    C: Estimate | None  # None when no component could be computed (no behaviour to explain)
    components: dict[str, float | None]
    replicates: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)  # [B] C per replicate


@dataclass(frozen=True)
class Verdict:
    D: Estimate | None
    C: Estimate | None
    F: Estimate | None
    components: dict[str, float | None]
    verdict: VerdictLabel
    reasons: list[str]
    cue_reliance: Estimate | None = None  # accuracy on cue_agree minus cue_flip; None without those splits
    relies_on_cue: bool = False  # cue_reliance's 95% lower bound above CUE_RELIANCE_MIN
    no_behaviour: bool = False  # circuits were measured, but the model shows no behaviour for one to explain (C undefined)
    G: Estimate | None = None  # behavioural generalization: the share of the test accuracy's margin kept OOD, mean over splits
    # "D", "C", "F" -> [B] bootstrap replicates, paired (the same test-example draws); NaN where a replicate was dropped
    replicates: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)


def retention(accuracy, clean):
    """How much of a clean accuracy's margin over chance survives: clip((acc - 0.5) / (clean - 0.5), 0, 1); 0 when clean <= 0.5."""
    clean = np.asarray(clean, dtype=float)
    value = np.where(clean > CHANCE, np.clip((np.asarray(accuracy) - CHANCE) / np.where(clean > CHANCE, clean - CHANCE, 1.0), 0, 1), 0.0)
    return float(value) if value.ndim == 0 else value


def recovered(value, empty, full):
    """clip((value - empty) / (full - empty), 0, 1) where full - empty >= MIN_EFFECT, else NaN (undefined)."""
    span = np.asarray(full) - np.asarray(empty)
    ok = span >= MIN_EFFECT
    out = np.where(ok, np.clip((np.asarray(value) - empty) / np.where(ok, span, 1.0), 0, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def closeness(ratio):
    """``max(0, 1 - |1 - ratio|)``: 1 where a circuit's share of the model's effect (or robustness) is the model's own,
    falling as it undershoots *or* overshoots (MIB's CMD distance, Mueller et al. 2025): a circuit that does more than
    the model is no better an account of it. NaN stays NaN."""
    value = np.maximum(0.0, 1.0 - np.abs(1.0 - np.asarray(ratio, dtype=float)))
    return float(value) if value.ndim == 0 else value


def area(curve: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """The trapezoid area under ``curve`` (one [1 + B] array per x) over ``x``, divided by x's range."""
    ys = np.vstack(curve)
    return np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(x)[:, None], axis=0) / (x[-1] - x[0])


def share(value, empty, full):
    """``(value - empty) / (full - empty)`` unclipped where full - empty >= MIN_EFFECT, else NaN (undefined)."""
    span = np.asarray(full) - np.asarray(empty)
    ok = span >= MIN_EFFECT
    out = np.where(ok, (np.asarray(value) - empty) / np.where(ok, span, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


class _Items:
    """Per-item arrays and their bootstrap replicates: mean and accuracy as [1 + B] (point, then replicates)."""

    def __init__(self, weights: np.ndarray) -> None:
        self.w = np.vstack([np.ones(weights.shape[1]), weights])  # row 0: every item once (the point estimate)

    def mean(self, x) -> np.ndarray:
        return self.w @ np.asarray(x, dtype=float) / self.w.shape[1]

    def accuracy(self, x) -> np.ndarray:
        return self.w @ (np.asarray(x, dtype=float) > 0) / self.w.shape[1]


def _weights(n: int, n_bootstrap: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """[B, n] how often each item is drawn in each replicate (the same draws as D's for the test split)."""
    draws = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
    return np.bincount((draws + n * np.arange(n_bootstrap)[:, None]).ravel(), minlength=n_bootstrap * n).reshape(n_bootstrap, n)


def coherence_components(result: RunResult, task: str, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
                         thresholds: Thresholds = THRESHOLDS) -> dict[str, np.ndarray | None]:
    """Each component of C as [1 + B] (point estimate, then bootstrap replicates); None when undefined."""
    t: TaskResult = result.tasks[task]
    c, test = t.circuits, t.behaviour["test"]
    n = test.n
    items = _Items(_weights(n, n_bootstrap, seed))
    full, empty = items.mean(test.logit_diffs), items.mean(c.test.empty)
    out: dict[str, np.ndarray | None] = dict.fromkeys(COMPONENTS + DIAGNOSTICS)
    if not float(full[0] - empty[0]) >= MIN_EFFECT:
        return out  # no behaviour beyond the all-ablated model: nothing for a circuit to explain
    own = _circuit_parts(items, empty, full, c.test.circuit, c.test.complement, c.curve.learned if c.curve else None, c.curve)
    necessity = own.pop("necessity")
    if c.restarts:  # two-stage bootstrap: each replicate picks a restart by the file's rule, then resamples the prompts
        per = [_circuit_parts(items, empty, full, r.circuit, r.complement, r.learned, c.curve) for r in c.restarts]
        sizes = [r.n_nodes for r in c.restarts]
        pick = smallest_of_drawn(sizes, n_bootstrap, seed) if result.since(11) else restart_draws(len(sizes), n_bootstrap, seed)
        for key, value in own.items():
            stacked = np.stack([p[key] for p in per])  # [R, 1 + B]
            own[key] = np.concatenate([value[:1], stacked[pick, 1 + np.arange(n_bootstrap)]])
        agreement = restart_jaccard(c)
        if agreement is not None:
            out["restart_jaccard"] = np.full(1 + n_bootstrap, agreement)
    out.update(own)
    if c.curve is not None:
        random_drops = np.mean([1 - recovered(items.mean(row), empty, full) for row in c.curve.random_complement], axis=0)
        out["necessity_margin"] = necessity - random_drops
    if result.specificity and task in result.specificity:
        drops = []
        for other, diffs in result.specificity[task].items():
            o = result.tasks[other]
            o_full, o_empty = items.mean(o.behaviour["test"].logit_diffs), items.mean(o.circuits.test.empty)
            if float(o_full[0] - o_empty[0]) >= MIN_EFFECT:
                drops.append(1 - recovered(items.mean(diffs), o_empty, o_full))
        if drops:
            out["specificity"] = np.clip(necessity - np.nanmax(np.vstack(drops), axis=0), 0, 1)  # own drop minus the largest other
    if t.stress is not None:
        out["stress"] = stress_robustness(t, items)
    if c.ood:
        out["ood"] = ood_faithfulness(t, n_bootstrap, seed, thresholds.D_high).values
    if c.control is not None:
        out["selectivity"], out["control_share"] = circuit_selectivity(t, items)
    if c.regimes is not None:
        r = regime_reuse(t, items, n_bootstrap, seed, established_margin=strict_intervals(result))
        out.update(reuse=r.reuse, reuse_length=r.axes.get("length"), reuse_ood=r.axes.get("ood"))
        out.update({f"jaccard_{axis}": np.full(1 + n_bootstrap, j) for axis, j in r.jaccard.items()})
    return out


RESTART_SALT = 15485863  # keeps the restart draws apart from every other draw of the same seed


def restart_draws(n_restarts: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """[B] the search restart each bootstrap replicate uses (uniform, seeded): scores version 4, whose files (schema 7-10)
    reported the median restart."""
    return np.random.default_rng((seed, RESTART_SALT)).integers(0, n_restarts, size=n_bootstrap)


def smallest_of_drawn(sizes: Sequence[int], n_bootstrap: int, seed: int) -> np.ndarray:
    """[B] the restart each replicate uses under scores version 5: it draws R = len(sizes) restarts with replacement
    and takes the smallest drawn (ties: the lowest index), the bootstrap of the smallest-of-R rule that picks the
    reported circuit (docs/metrics.md, "Scores version 5")."""
    r = len(sizes)
    drawn = np.random.default_rng((seed, RESTART_SALT)).integers(0, r, size=(n_bootstrap, r))
    rank = np.argsort(np.lexsort((np.arange(r), np.asarray(sizes))))  # restart -> its place in (size, index) order
    best = np.take_along_axis(drawn, np.argmin(rank[drawn], axis=1)[:, None], axis=1)
    return best[:, 0]


def restart_jaccard(c: CircuitSection) -> float | None:
    """Mean over pairs of search restarts of their node sets' Jaccard index (1: every restart found the same nodes);
    None with fewer than two restarts."""
    sets = [{(site, i) for site, idx in r.kept.items() for i in idx} for r in c.restarts]
    pairs = [(a, b) for i, a in enumerate(sets) for b in sets[i + 1:]]
    if not pairs:
        return None
    return float(np.mean([len(a & b) / len(a | b) if a | b else 1.0 for a, b in pairs]))


def _circuit_parts(items: _Items, empty: np.ndarray, full: np.ndarray, circuit: list[float], complement: list[float],
                   learned: list[list[float]] | None, curve: FaithfulnessCurve | None) -> dict[str, np.ndarray]:
    """One circuit's faithfulness and necessity, and with a curve its CPR, CMD and compactness, each [1 + B]."""
    sufficiency = closeness(share(items.mean(circuit), empty, full))  # no reward for beating the model
    necessity = 1 - recovered(items.mean(complement), empty, full)
    out = {"faithfulness": np.sqrt(np.nan_to_num(sufficiency) * np.nan_to_num(necessity)), "necessity": necessity}
    if curve is None or learned is None:
        return out
    span = full - empty  # at least MIN_EFFECT at the point; a replicate with no behaviour left reads 0 at every size

    def fraction(row: list[float]) -> np.ndarray:
        return np.nan_to_num((items.mean(row) - empty) / np.where(span > 0, span, np.nan))

    ranked, randomly = [fraction(row) for row in learned], [fraction(row) for row in curve.random]
    x = np.log(np.asarray(curve.sizes, dtype=float))
    out["cpr"], out["cmd"] = area(ranked, x), area([np.abs(1 - f) for f in ranked], x)
    a_learned, a_random = area([closeness(f) for f in ranked], x), area([closeness(f) for f in randomly], x)
    room = 1 - a_random
    out["compactness"] = np.where(room > 0, np.clip((a_learned - a_random) / np.where(room > 0, room, 1.0), 0, 1), 0.0)
    return out


def circuit_selectivity(t: TaskResult, items: _Items) -> tuple[np.ndarray, np.ndarray]:
    """[1 + B] circuit selectivity and [1 + B] the control's share: the control ranking's top k* nodes (k* the circuit's
    size) alone, their mean control logit difference above the all-ablated model's, as a share of the task's span
    m(M) - m(empty); selectivity = clip(1 - max(control share, 0) / the circuit's share, 0, 1), 0 where the circuit's
    share is not positive (docs/metrics.md, "Circuit control task")."""
    c = t.circuits
    sign = np.where(np.asarray(c.control.flip), -1.0, 1.0)  # the control's logit difference is the task's times this
    full, empty = items.mean(t.behaviour["test"].logit_diffs), items.mean(c.test.empty)
    real = share(items.mean(c.test.circuit), empty, full)
    control = (items.mean(sign * np.asarray(c.control.circuit)) - items.mean(sign * np.asarray(c.test.empty))) / (full - empty)
    ok = (full - empty >= MIN_EFFECT) & np.isfinite(real)
    safe = np.where(real > 0, real, 1.0)
    value = np.where(ok, np.where(real > 0, np.clip(1 - np.maximum(control, 0) / safe, 0, 1), 0.0), np.nan)
    return value, np.where(ok, control, np.nan)


MIN_REGIME_PROMPTS = 16  # test prompts a regime needs before reuse into it is scored
REUSE_SALT = 27644437  # keeps the pooled OOD prompts' resampling apart from every other draw of the same seed
MARGIN_SALT = 32452843  # keeps reuse_margin's draws of random node sets apart from every other draw of the same seed
AXES = {"length": ("short", "long"), "ood": ("id", "ood")}  # reuse's axes: pairs of regimes (docs/metrics.md)


@dataclass(frozen=True)
class Reuse:
    reuse: np.ndarray | None  # [1 + B] the minimum over the defined axes; None when none is defined
    axes: dict[str, np.ndarray]  # axis -> [1 + B] the mean of its defined directions
    jaccard: dict[str, float]  # axis -> node Jaccard of its two circuits (both searched)
    directions: dict[tuple[str, str], np.ndarray]  # (A, B) -> [1 + B] reuse(A -> B), every defined ordered pair of regimes


def regime_reuse(t: TaskResult, items: _Items, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
                 established_margin: bool = True) -> Reuse:
    """Mechanism reuse across regimes (docs/metrics.md): per axis and direction A -> B, on B's test prompts,
    clip((t - r) / (o - r), 0, 1) with t, o and r the shares of B's span m(M) - m(empty) that A's circuit, B's own
    circuit and the mean of A's random node sets recover; the axis takes the mean of its defined directions and reuse
    the minimum over the defined axes, replicate by replicate. A direction is defined when o > r at the point estimate
    and, with ``established_margin`` (scores version 6), when the 95% interval of o - r lies above 0, its replicates
    resampling the random node sets among A's draws too (:func:`reuse_margin`)."""
    c, g = t.circuits, t.circuits.regimes
    test = t.behaviour["test"]
    short = np.asarray(g.short, dtype=bool)
    pool = _Items(_weights(len(g.ood_prompts), n_bootstrap, (seed, REUSE_SALT))) if g.ood_prompts else None
    pool_full = [t.behaviour[s].logit_diffs[i] for s, i in g.ood_prompts]
    pool_empty = [c.ood[s].empty[i] for s, i in g.ood_prompts]
    prompts = {"id": np.ones(len(short), dtype=bool), "short": short, "long": ~short}  # in-distribution regimes' test prompts

    def on(regime: str, rows: list[float] | None) -> np.ndarray | None:
        """[1 + B] the mean of ``rows`` (per prompt of the test split, or of the pool) over regime's prompts."""
        if rows is None:
            return None
        if regime == "ood":
            return pool.mean(rows)
        mask = prompts[regime]
        w = items.w[:, mask]
        return (w @ np.asarray(rows, dtype=float)[mask]) / np.where(w.sum(axis=1) > 0, w.sum(axis=1), np.nan)

    def rows(regime: str, values: list[float] | None, ood_values: list[float] | None) -> list[float] | None:
        return ood_values if regime == "ood" else values

    def share_in(b: str, circuit: list[float] | None, circuit_ood: list[float] | None) -> np.ndarray | None:
        full = on(b, rows(b, test.logit_diffs, pool_full))
        empty = on(b, rows(b, c.test.empty, pool_empty))
        value = on(b, rows(b, circuit, circuit_ood))
        if value is None:
            return None
        span = full - empty
        return np.where(span >= MIN_EFFECT, (value - empty) / np.where(span > 0, span, 1.0), np.nan)

    def count(regime: str) -> int:
        return len(g.ood_prompts) if regime == "ood" else int(prompts[regime].sum())

    names = [name for name in g.circuits if name in ("id", "short", "long", "ood")]

    def reuse(a: str, b: str) -> np.ndarray | None:
        ca, cb = g.circuits.get(a), g.circuits.get(b)
        if ca is None or cb is None or ca.test is None or cb.test is None or count(b) < MIN_REGIME_PROMPTS:
            return None
        if b == "ood" and not g.ood_prompts:
            return None
        transfer, own = share_in(b, ca.test, ca.ood), share_in(b, cb.test, cb.ood)
        randoms = [share_in(b, rt, ro) for rt, ro in zip(ca.random_test, ca.random_ood or [None] * len(ca.random_test))]
        randoms = [r for r in randoms if r is not None]
        if transfer is None or own is None or not randoms:
            return None
        rand = np.mean(randoms, axis=0)
        room = own - rand
        if not (np.isfinite(room[0]) and room[0] > 0):  # B's own circuit is no better than random, or B shows no behaviour
            return None
        if established_margin and not reuse_margin(own, randoms, (seed, MARGIN_SALT, names.index(a), names.index(b))).low > 0:
            return None  # B's own margin over random is not shown: the ratio would be noise (scores version 6)
        return np.where(room > 0, np.clip((transfer - rand) / np.where(room > 0, room, 1.0), 0, 1), np.nan)

    directions = {(a, b): r for a in names for b in names if a != b and (r := reuse(a, b)) is not None}
    axes, jaccard = {}, {}
    for axis, (a, b) in AXES.items():
        defined = [directions[pair] for pair in ((a, b), (b, a)) if pair in directions]
        if defined:
            axes[axis] = np.mean(defined, axis=0)
        ca, cb = g.circuits.get(a), g.circuits.get(b)
        if ca is not None and cb is not None and ca.test is not None and cb.test is not None:
            sa = {(site, i) for site, idx in ca.kept.items() for i in idx}
            sb = {(site, i) for site, idx in cb.kept.items() for i in idx}
            jaccard[axis] = len(sa & sb) / len(sa | sb) if sa | sb else 1.0
    value = np.min(np.vstack(list(axes.values())), axis=0) if axes else None
    return Reuse(value, axes, jaccard, directions)


def reuse_margin(own: np.ndarray, randoms: Sequence[np.ndarray], seed: int | tuple[int, ...]) -> Estimate:
    """o - r, B's own circuit's share of B's span minus the mean share of A's random node sets, with its 95% interval:
    each replicate resamples the prompts (as ``own`` and ``randoms`` already do, [1 + B] each) and draws as many random
    sets as there are, with replacement (seeded). Replicates where B shows no behaviour (NaN) are left out."""
    stacked = np.stack(randoms)  # [K, 1 + B]
    k, n_replicates = stacked.shape[0], stacked.shape[1] - 1
    drawn = np.random.default_rng(seed).integers(0, k, size=(n_replicates, k))  # [B, K] which random sets each replicate uses
    rand = stacked[drawn, 1 + np.arange(n_replicates)[:, None]].mean(axis=1)  # [B]
    return _estimate(float(own[0] - stacked[:, 0].mean()), own[1:] - rand)


def regime_reuse_matrix(result: RunResult, task: str) -> tuple[np.ndarray, list[str]]:
    """Point estimates of reuse(A -> B) for every pair of ``task``'s regimes (rows A, columns B; 1 on the diagonal, NaN
    where undefined by the file's scores version, as C reads them), and the regimes' names in order: what the reuse
    figure draws."""
    t = result.tasks[task]
    names = [r for r in ("id", "short", "long", "ood") if r in t.circuits.regimes.circuits]
    strict = strict_intervals(result)  # version 6 reads a direction only with its margin's interval: replicates needed
    n_bootstrap = N_BOOTSTRAP if strict else 0
    items = _Items(_weights(t.behaviour["test"].n, n_bootstrap, BOOTSTRAP_SEED))
    directions = regime_reuse(t, items, n_bootstrap, BOOTSTRAP_SEED, established_margin=strict).directions
    matrix = np.array([[1.0 if a == b else float(directions[(a, b)][0]) if (a, b) in directions else np.nan for b in names] for a in names])
    return matrix, names


@dataclass(frozen=True)
class OODFaithfulness:
    """C's ood component and which OOD splits it could use."""

    values: np.ndarray | None  # [1 + B] mean over the usable splits; None when no split is usable
    used: list[str]  # splits where the model keeps its behaviour and the latents still decode
    no_behaviour: list[str]  # splits where the model's mean logit difference is not MIN_EFFECT above the all-ablated model's
    not_decoded: list[str]  # splits where the in-distribution probes' D there (point) is below D_HIGH


def ood_decodability(t: TaskResult, split: str) -> float | None:
    """D on an OOD split, point estimate: the in-distribution probe's transfer accuracy per latent, normalized above
    the latent's in-distribution floor max(chance, lexical, untrained), averaged; None without transfer readouts."""
    if t.probes is None:
        return None
    ds = []
    for latent in t.probes.latents.values():
        transfer = latent.transfer.get(split)
        if transfer is None:
            return None
        untrained = latent.untrained.test.accuracy if latent.untrained is not None else 0.0
        ds.append(latent_d(transfer.accuracy, latent.chance, latent.lexical.accuracy, untrained))
    return float(np.mean(ds)) if ds else None


def ood_faithfulness(t: TaskResult, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED, d_high: float = D_HIGH) -> OODFaithfulness:
    """Over the OOD splits where the model keeps its behaviour (m(M) - m(empty) >= MIN_EFFECT) and the latents still
    decode (``ood_decodability`` >= D_HIGH; not checked without probes), the in-distribution circuit's closeness to
    the model there, ``closeness((m(C) - m(empty)) / (m(M) - m(empty)))``, averaged. Behavioural failure OOD is
    generalization G's, and a latent the model no longer computes says nothing about how it is organized."""
    used, no_behaviour, not_decoded, levels = [], [], [], []
    for i, (split, circ) in enumerate(sorted(t.circuits.ood.items())):
        b = t.behaviour[split]
        ood_items = _Items(_weights(b.n, n_bootstrap, (seed, i + 1)))
        full, empty = ood_items.mean(b.logit_diffs), ood_items.mean(circ.empty)
        if not float(full[0] - empty[0]) >= MIN_EFFECT:
            no_behaviour.append(split)
            continue
        decoded = ood_decodability(t, split)
        if decoded is not None and decoded < d_high:
            not_decoded.append(split)
            continue
        used.append(split)
        span = full - empty  # above MIN_EFFECT at the point; a replicate with none left counts 0
        levels.append(np.nan_to_num(closeness((ood_items.mean(circ.circuit) - empty) / np.where(span > 0, span, np.nan))))
    values = np.mean(levels, axis=0) if levels else None
    return OODFaithfulness(values, used, no_behaviour, not_decoded)


def generalization(t: TaskResult, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> Estimate | None:
    """Behavioural generalization G: the mean over the task's OOD splits of the share of the test split's accuracy
    margin over chance the model keeps there (``retention``). Beside D and C, never in C. None without OOD splits."""
    test = t.behaviour.get("test")
    ood = sorted(s for s, b in t.behaviour.items() if b.ood_axis is not None)
    if test is None or not ood:
        return None
    clean = _Items(_weights(test.n, n_bootstrap, seed)).accuracy(test.logit_diffs)
    kept = [retention(_Items(_weights(t.behaviour[s].n, n_bootstrap, (seed, i + 1))).accuracy(t.behaviour[s].logit_diffs), clean)
            for i, s in enumerate(ood)]
    G = np.mean(kept, axis=0)
    return _estimate(float(G[0]), G[1:])


def stress_robustness(t: TaskResult, items: _Items) -> np.ndarray | None:
    """[1 + B] the share of the full model's robustness the circuit alone keeps, averaged over perturbation kinds.

    Per kind, the area under the circuit's accuracy-retention curve (relative to its clean accuracy) over the
    area under the full model's curve under the same perturbations (relative to the model's clean accuracy),
    scored by ``closeness`` (a circuit more robust than the model is no better an account of it than a less robust one;
    scores v2 clipped the ratio at 1, and saw ratios up to 3.14). A kind where the full model keeps nothing at any level
    says nothing about the circuit and is left out (None when every kind is); which kinds count is decided on the point
    estimate, and a bootstrap replicate in which the model keeps nothing under a counted kind scores it 1 when the
    circuit keeps nothing either and 0 otherwise. Why relative: docs/metrics.md, "Coherence C".
    """
    circuit_clean, model_clean = items.accuracy(t.circuits.test.circuit), items.accuracy(t.behaviour["test"].logit_diffs)
    per_kind = []
    for kind in STRESS_KINDS:
        curve = getattr(t.stress, kind)
        if curve is None:
            continue
        circuit_area = np.sum([retention(items.accuracy(row), circuit_clean) for row in curve.circuit], axis=0)
        model_area = np.sum([retention(items.accuracy(row), model_clean) for row in curve.model], axis=0)
        if not model_area[0] > 0:
            continue
        ratio = np.where(model_area > 0, circuit_area / np.where(model_area > 0, model_area, 1.0), np.where(circuit_area > 0, np.inf, 1.0))
        per_kind.append(closeness(ratio))
    if not per_kind:
        return None
    return np.mean(np.vstack(per_kind), axis=0)


def specificity_drops(result: RunResult) -> dict[str, dict[str, float]]:
    """Break It Down's matrix: drop[A][B] = 1 - recovered(task B's mean logit difference with A's circuit ablated),
    point estimates; the diagonal is each task's own drop (its necessity). Empty without ``result.specificity``;
    a task with no behaviour to normalize by (as B) is left out."""
    out: dict[str, dict[str, float]] = {}
    for a, row in (result.specificity or {}).items():
        for b, diffs in {a: result.tasks[a].circuits.test.complement, **row}.items():
            t = result.tasks[b]
            value = recovered(float(np.mean(diffs)), float(np.mean(t.circuits.test.empty)), float(np.mean(t.behaviour["test"].logit_diffs)))
            if not np.isnan(value):
                out.setdefault(a, {})[b] = 1 - value
    return out


def coherence(result: RunResult, task: str, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
              thresholds: Thresholds = THRESHOLDS) -> Coherence:
    """C = geometric mean of the defined components in ``IN_C`` (each in [0, 1]), with its bootstrap interval."""
    parts = coherence_components(result, task, n_bootstrap, seed, thresholds)
    defined = [v for k, v in parts.items() if k in IN_C and v is not None]
    values = {k: (None if v is None else float(v[0])) for k, v in parts.items()}
    if not defined:
        return Coherence(None, values)
    C = np.exp(np.mean(np.log(np.clip(np.vstack(defined), 1e-12, 1)), axis=0))
    C = np.where(np.min(np.vstack(defined), axis=0) <= 0, 0.0, C)
    return Coherence(_estimate(float(C[0]), C[1:]), values, C[1:])


ERASURE_SALT = 130363  # keeps the erasure gap's resampling of the test prompts apart from D's and C's


def erasure_gap(full: list[float], e: LatentErasure | None, n_bootstrap: int = N_BOOTSTRAP,
                seed: int = BOOTSTRAP_SEED) -> Estimate | None:
    """How much more erasing a latent at its best site changes the behaviour than erasing same-rank random subspaces:
    |1 - m(erased) / m(M)| minus the controls' mean |1 - m(control) / m(M)|, m the mean logit difference on the test
    prompts (``full``: the model's own, behaviour.test's), all resampled together (docs/metrics.md, "Erasure"). None
    without an erasure, or without behaviour (m(M) < MIN_EFFECT: the shares would divide by a number near 0)."""
    if e is None:
        return None
    if len(full) != len(e.erased):
        raise ValueError(f"{len(full)} model logit differences for {len(e.erased)} erased ones: the same test prompts are needed")
    items = _Items(_weights(len(e.erased), n_bootstrap, (seed, ERASURE_SALT)))
    m = items.mean(full)
    if m[0] < MIN_EFFECT:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        changed = lambda edited: np.abs(1 - items.mean(edited) / m)  # noqa: E731
        gap = changed(e.erased) - np.mean([changed(c) for c in e.controls], axis=0)
    gap[1:][m[1:] <= 0] = np.nan  # a replicate without a positive logit difference has no share
    return _estimate(float(gap[0]), gap[1:])


def erasure_shares(full: list[float], e: LatentErasure) -> tuple[float, list[float]]:
    """The signed share of the model's mean logit difference the erasure removes, 1 - m(erased) / m(M), and each
    control's (for tables and figures; :func:`erasure_gap` is the score)."""
    m = float(np.mean(full))
    return 1 - float(np.mean(e.erased)) / m, [1 - float(np.mean(c)) / m for c in e.controls]


def task_erasure(t: TaskResult, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict[str, Estimate | None]:
    """Each latent's erasure gap (:func:`erasure_gap`); empty without probes or test behaviour."""
    if t.probes is None or "test" not in t.behaviour:
        return {}
    full = t.behaviour["test"].logit_diffs
    return {name: erasure_gap(full, latent.erasure, n_bootstrap, seed) for name, latent in t.probes.latents.items()
            if latent.erasure is not None}


def erasure_reading(gap: Estimate | None, thresholds: Thresholds = THRESHOLDS) -> str | None:
    """"used" when the gap's lower bound is above 0, "not used" when its upper bound is below ``erasure_unused_max``,
    else "inconclusive"; None without a gap. (Whether the latent decodes is D's to say, beside it.)"""
    if gap is None:
        return None
    if gap.low > 0:
        return "used"
    return "not used" if gap.high < thresholds.erasure_unused_max else "inconclusive"


TOKEN_SALT = 2147483647  # keeps the token-pruning prompts' resampling apart from every other draw of the same seed


def token_pruning_scores(t: TaskResult, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict[str, Estimate | None]:
    """Means over the pruned prompts of precision (evidence characters kept / characters kept; prompts that kept none
    left out), recall (evidence kept / evidence) and the chance precision (evidence / removable characters), with 95%
    bootstrap intervals over prompts; empty without token pruning (docs/metrics.md)."""
    if t.token_pruning is None or not t.token_pruning.prompts:
        return {}
    prompts = t.token_pruning.prompts
    weights = _weights(len(prompts), n_bootstrap, (seed, TOKEN_SALT)).astype(float)
    rows = {"precision": [len(set(p.kept) & set(p.evidence)) / len(p.kept) if p.kept else np.nan for p in prompts],
            "recall": [len(set(p.kept) & set(p.evidence)) / len(p.evidence) for p in prompts],
            "chance_precision": [len(p.evidence) / p.n_chars for p in prompts],
            "kept_share": [len(p.kept) / p.n_chars for p in prompts]}
    out = {}
    for name, values in rows.items():
        x = np.asarray(values, dtype=float)
        ok = np.isfinite(x)
        if not ok.any():
            out[name] = None
            continue
        w = np.vstack([np.ones(len(x)), weights])[:, ok]
        means = (w @ x[ok]) / np.where(w.sum(axis=1) > 0, w.sum(axis=1), np.nan)
        out[name] = _estimate(float(means[0]), means[1:])
    return out


CUE_SALT = 104729  # keeps the cue splits' resampling apart from every other draw of the same seed


def cue_reliance(t: TaskResult, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> Estimate | None:
    """Accuracy with the spurious cue agreeing minus with it pointing at the foil (the ``cue_agree`` and ``cue_flip``
    splits: test prompts, independent samples, each resampled on its own); None without both splits."""
    if "cue_agree" not in t.behaviour or "cue_flip" not in t.behaviour:
        return None
    splits = [t.behaviour["cue_agree"], t.behaviour["cue_flip"]]
    acc = [_Items(_weights(b.n, n_bootstrap, (seed, CUE_SALT, i))).accuracy(b.logit_diffs) for i, b in enumerate(splits)]
    gap = acc[0] - acc[1]
    return _estimate(float(gap[0]), gap[1:])


def verdict(result: RunResult, task: str, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
            thresholds: Thresholds = THRESHOLDS) -> Verdict:
    """D, C, F = D - C, cue reliance and the three-way verdict for one task of ``result``: D's interval must lie
    above ``D_HIGH``; then C's interval below ``C_LOW`` is FRACTURED, above it coherent, across it inconclusive. Under
    scores version 6 an interval that ends on a threshold is across it; version 5 read an end on it as above."""
    t = result.tasks[task]
    dec = decodability(t.probes, n_bootstrap, seed) if t.probes is not None else None
    D = dec.D if dec is not None else None
    th = thresholds
    coh = coherence(result, task, n_bootstrap, seed, th) if t.circuits is not None else Coherence(None, dict.fromkeys(COMPONENTS + DIAGNOSTICS))
    F, reps = None, {}
    if dec is not None:
        reps["D"] = dec.replicates
    if coh.C is not None:
        reps["C"] = coh.replicates
    if dec is not None and coh.C is not None:
        # D and C resample the same test examples in each replicate (same seed, same n_test): F's interval is joint
        paired = dec.replicates - coh.replicates if len(dec.replicates) == len(coh.replicates) else np.zeros(0)
        F = _estimate(D.value - coh.C.value, paired)
        reps["F"] = paired
    reliance = cue_reliance(t, n_bootstrap, seed)
    ood_notes = []
    if t.circuits is not None and t.circuits.ood and coh.C is not None:
        ood = ood_faithfulness(t, n_bootstrap, seed, th.D_high)
        n_ood = len(t.circuits.ood)
        if ood.no_behaviour:
            ood_notes.append(f"no behaviour OOD on {len(ood.no_behaviour)} of {n_ood} splits")
        if ood.not_decoded:
            ood_notes.append(f"does not decode OOD on {len(ood.not_decoded)} of {n_ood} splits")
    relies = reliance is not None and reliance.low > th.cue_reliance_min
    cue = [f"relies on its cue: accuracy {reliance.value:+.2f} [{reliance.low:+.2f}, {reliance.high:+.2f}] with it agreeing vs "
           f"flipped"] if relies else []
    scored = dict(D=D, C=coh.C, F=F, components=coh.components, replicates=reps, cue_reliance=reliance, relies_on_cue=relies,
                  no_behaviour=t.circuits is not None and coh.C is None, G=generalization(t, n_bootstrap, seed))

    def decided(label: VerdictLabel, reasons: list[str]) -> Verdict:
        return Verdict(**scored, verdict=label, reasons=cue + reasons)

    if D is None:
        return decided(NOT_SCORED, ["no probes (run without --no-probes)"])
    interval = f"D {D.value:.2f}, 95% interval [{D.low:.2f}, {D.high:.2f}]"
    strict = strict_intervals(result)  # version 6: an interval that reaches the threshold decides nothing
    if D.high < th.D_high:
        return decided(DOES_NOT_DECODE, [f"{interval}: below {th.D_high}"])
    if not _clears(D.low, th.D_high, strict):
        return decided(INCONCLUSIVE, [f"{interval}: {_where(D.low, th.D_high)} {th.D_high}"])
    if t.circuits is None:
        return decided(NOT_SCORED, ["no circuit (run without --no-circuits)"])
    if scored["no_behaviour"]:
        return decided(NO_BEHAVIOUR, ["no behaviour for a circuit to explain (m(M) - m(empty) below MIN_EFFECT)"])
    failing = sorted((v, k) for k, v in coh.components.items() if k in IN_C and v is not None and v < th.component_low)
    low = [f"{k} {v:.2f}" for v, k in failing]  # the weakest first: the verdict's main cause leads
    C = coh.C
    if C.high < th.C_low:
        return decided(FRACTURED, (low or [f"C {C.value:.2f} [{C.low:.2f}, {C.high:.2f}] below {th.C_low}"]) + ood_notes)
    if not _clears(C.low, th.C_low, strict):
        return decided(INCONCLUSIVE, [f"C {C.value:.2f}, 95% interval [{C.low:.2f}, {C.high:.2f}]: {_where(C.low, th.C_low)} {th.C_low}"]
                       + low + ood_notes)
    return decided(COHERENT, low + ood_notes)


def _clears(low: float, threshold: float, strict: bool) -> bool:
    """Whether an interval's lower end puts it above ``threshold``: strictly under scores version 6, at or above under 5."""
    return low > threshold if strict else low >= threshold


def _where(low: float, threshold: float) -> str:
    """How an interval that does not clear ``threshold`` stands against it: across it, or ending on it."""
    return "across" if low < threshold else "reaches"


# -- a model over the suite -------------------------------------------------------------


MODEL_SHUFFLE_SALT = 7919  # keeps the model-level shuffles apart from every task-level draw of the same seed
TASK_LABELS: tuple[VerdictLabel, ...] = (FRACTURED, COHERENT, INCONCLUSIVE, DOES_NOT_DECODE, NO_BEHAVIOUR, NOT_SCORED)


@dataclass(frozen=True)
class ModelScores:
    """A model's scores over the tasks of one results file: the means of the task scores over every task (a task
    the model shows no behaviour on counts C = 0, never drops out), with bootstrap intervals; the verdict is the
    task label a majority of the tasks hold."""

    D: Estimate | None  # mean over tasks with probes
    C: Estimate | None  # mean over tasks with circuits searched, C = 0 where the model shows no behaviour
    F: Estimate | None  # mean over tasks with both
    verdict: VerdictLabel
    reasons: list[str]
    tasks: dict[str, Verdict]
    counts: dict[str, int] = field(default_factory=dict)  # task label -> how many tasks hold it


def _task_score(v: Verdict, key: str, n_bootstrap: int) -> tuple[float, np.ndarray] | None:
    """A task's point and [B] replicates of D, C or F for the model mean; C = 0 (and F = D) where circuits were
    measured but the model shows no behaviour; None where the score is not measured."""
    e = getattr(v, key)
    if e is not None:
        return e.value, v.replicates.get(key, np.zeros(0))
    if key == "C" and v.no_behaviour:
        return 0.0, np.zeros(n_bootstrap)
    if key == "F" and v.no_behaviour and v.D is not None:
        return v.D.value, v.replicates.get("D", np.zeros(0))
    return None


def model_scores(result: RunResult, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
                 verdicts: dict[str, Verdict] | None = None, thresholds: Thresholds = THRESHOLDS) -> ModelScores:
    """The model-level means and verdict. The tasks' test sets are independent samples, so a model-level replicate
    combines independent draws, one per task: each task's (paired D, C, F) replicates are shuffled by a permutation
    seeded by ``seed`` and the task's position in name order, then averaged replicate by replicate. The verdict is
    the task label held by more than ``MODEL_MAJORITY`` of all the file's tasks (FRACTURED, coherent, does not decode
    or no behaviour); when none is, inconclusive."""
    verdicts = verdicts if verdicts is not None else {name: verdict(result, name, n_bootstrap, seed, thresholds) for name in result.tasks}
    names = sorted(verdicts)
    order = {name: np.random.default_rng((seed, MODEL_SHUFFLE_SALT, i)).permutation(n_bootstrap) for i, name in enumerate(names)}
    means = {}
    for key in ("D", "C", "F"):
        scores = {n: _task_score(verdicts[n], key, n_bootstrap) for n in names}
        having = [n for n in names if scores[n] is not None]
        if not having:
            means[key] = None
            continue
        point = float(np.mean([scores[n][0] for n in having]))
        reps = [scores[n][1] for n in having]
        if all(len(r) == n_bootstrap for r in reps):
            combined = np.mean([r[order[n]] for n, r in zip(having, reps)], axis=0)
            means[key] = _estimate(point, combined)
        else:
            means[key] = Estimate(point, point, point)  # replicates not available: no interval
    counts = {label: sum(verdicts[n].verdict == label for n in names) for label in TASK_LABELS}
    majority = [label for label in (FRACTURED, COHERENT, DOES_NOT_DECODE, NO_BEHAVIOUR) if counts[label] > thresholds.model_majority * len(names)]
    if counts[NOT_SCORED] == len(names):
        label: VerdictLabel = NOT_SCORED
    else:
        label = majority[0] if majority else INCONCLUSIVE
    summary = ", ".join(f"{lab} on {counts[lab]}" for lab in TASK_LABELS if counts[lab]) + f" of {len(names)} tasks"
    details = [f"{n}: {verdicts[n].verdict}" + (f" ({', '.join(verdicts[n].reasons)})" if verdicts[n].reasons else "")
               for n in names if verdicts[n].verdict != label]
    return ModelScores(means["D"], means["C"], means["F"], label, [summary, *details], verdicts,
                       {k: v for k, v in counts.items() if v})


def paired_model_difference(a: RunResult, b: RunResult, key: str = "C", n_bootstrap: int = N_BOOTSTRAP,
                            seed: int = BOOTSTRAP_SEED) -> Estimate:
    """Model-level ``key`` (D, C or F) of ``b`` minus ``a``, paired: two files of the same n and seed resample the same
    test prompts (and draw the same restarts), so each replicate's difference is taken task by task, over the tasks both
    hold, before the tasks are shuffled and averaged as :func:`model_scores` averages them. A task scored on one side
    only counts as :func:`model_scores` counts it (C = 0 without behaviour)."""
    sa, sb = model_scores(a, n_bootstrap, seed), model_scores(b, n_bootstrap, seed)
    names = sorted(set(sa.tasks) & set(sb.tasks))
    if not names:
        raise ValueError("the two results files share no task: nothing to compare")
    diffs, points = [], []
    for i, name in enumerate(names):
        va, vb = (_task_score(s.tasks[name], key, n_bootstrap) for s in (sa, sb))
        (pa, ra), (pb, rb) = (v or (0.0, np.zeros(n_bootstrap)) for v in (va, vb))
        ra, rb = (r if len(r) == n_bootstrap else np.full(n_bootstrap, point) for r, point in ((ra, pa), (rb, pb)))
        order = np.random.default_rng((seed, MODEL_SHUFFLE_SALT, i)).permutation(n_bootstrap)
        diffs.append((rb - ra)[order])
        points.append(pb - pa)
    return _estimate(float(np.mean(points)), np.nanmean(diffs, axis=0))


__all__ = [
    "paired_model_difference",
    "D_VERSION",
    "N_BOOTSTRAP",
    "BOOTSTRAP_SEED",
    "Estimate",
    "LatentDecodability",
    "Decodability",
    "normalized",
    "selectivity",
    "latent_d",
    "decodability",
    "run_decodability",
    "SCORES_VERSION",
    "scores_version",
    "scores_versions",
    "smallest_of_drawn",
    "Thresholds",
    "THRESHOLDS",
    "D_HIGH",
    "C_LOW",
    "COMPONENT_LOW",
    "CUE_RELIANCE_MIN",
    "MODEL_MAJORITY",
    "cue_reliance",
    "token_pruning_scores",
    "erasure_gap",
    "erasure_shares",
    "erasure_reading",
    "task_erasure",
    "closeness",
    "area",
    "DIAGNOSTICS",
    "share",
    "generalization",
    "ood_faithfulness",
    "ood_decodability",
    "COMPONENTS",
    "IN_C",
    "Coherence",
    "Verdict",
    "retention",
    "recovered",
    "coherence_components",
    "specificity_drops",
    "coherence",
    "verdict",
    "ModelScores",
    "model_scores",
]
