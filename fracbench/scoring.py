"""Scores computed from results files: decodability D (coherence C and the fracture gap come later).

Reads only :mod:`fracbench.results` objects, never a model, so the leaderboard recomputes
every score from a submitted file's raw per-row numbers instead of trusting it. Pure
functions, deterministic: the bootstrap is seeded. Definitions, with references, are in
``docs/metrics.md`` ("Decodability D").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .results import LatentProbes, ProbeSection, RunResult

D_VERSION = "1"  # the definition of D: 0 = DESIGN.md's v0 (control-task subtraction), 1 = above max(chance, lexical)
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
    d: Estimate  # clip(normalized(accuracy, max(c, b)), 0, 1)
    control_accuracy: Estimate  # diagnostic, not in d: the control probe's test accuracy (Hewitt & Liang 2019)
    selectivity: Estimate  # diagnostic, not in d: accuracy - control_accuracy

    @property
    def floor(self) -> float:
        """``max(chance, lexical)``: the accuracy a probe gets without reading anything the model computed."""
        return max(self.chance, self.lexical.value)


@dataclass(frozen=True)
class Decodability:
    """A task's decodability: D = mean over latents of d, with a joint bootstrap interval."""

    D: Estimate
    latents: dict[str, LatentDecodability]
    n_bootstrap: int
    seed: int
    version: str = D_VERSION  # the definition of D that computed it


def normalized(accuracy, floor):
    """``(accuracy - floor) / (1 - floor)``: 0 at the floor, 1 when perfect; 0 when the floor is 1
    (nothing is left above it to show). Floats or numpy arrays (the bootstrap replicates)."""
    below_one = np.asarray(floor) < 1.0
    value = np.where(below_one, (np.asarray(accuracy) - floor) / np.where(below_one, 1.0 - np.asarray(floor), 1.0), 0.0)
    return float(value) if value.ndim == 0 else value


def selectivity(accuracy: float, control_accuracy: float) -> float:
    """Hewitt & Liang's selectivity, ``accuracy - control_accuracy``: a diagnostic of the probe, not in D."""
    return accuracy - control_accuracy


def latent_d(accuracy, chance, lexical):
    """A latent's decodability: the probe's accuracy normalized above ``max(chance, lexical)``, clipped to [0, 1].
    Floats or numpy arrays (the bootstrap replicates)."""
    value = np.clip(normalized(accuracy, np.maximum(chance, lexical)), 0.0, 1.0)
    return float(value) if np.ndim(value) == 0 else value


def decodability(section: ProbeSection, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> Decodability:
    """D of one task from its probe section, with 95% percentile intervals from a cluster bootstrap.

    Per latent, at its best site: ``d = clip((acc - floor) / (1 - floor), 0, 1)`` with
    ``floor = max(chance, lexical)`` (0 when the floor is 1); D is the mean of d over latents.

    Each replicate resamples the ``n_test_examples`` test examples with replacement and
    takes every row of each drawn example (rows of one example are correlated), the same
    draw for every latent, so D's interval is joint. Replicates in which some latent has
    no rows are dropped (possible only with very few examples).
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    n = section.n_test_examples
    draws = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
    weights = np.bincount((draws + n * np.arange(n_bootstrap)[:, None]).ravel(), minlength=n_bootstrap * n).reshape(n_bootstrap, n)
    per_latent = {name: _replicates(latent, weights, n) for name, latent in section.latents.items()}
    valid = np.logical_and.reduce([r["valid"] for r in per_latent.values()]) if per_latent else np.ones(n_bootstrap, bool)

    latents = {}
    for name, latent in section.latents.items():
        probes = latent.sites[latent.best_site]
        acc, ctrl, lex = probes.test.accuracy, probes.control_test.accuracy, latent.lexical.accuracy
        r = per_latent[name]
        latents[name] = LatentDecodability(
            site=latent.best_site,
            chance=latent.chance,
            accuracy=_estimate(acc, r["accuracy"][valid]),
            lexical=_estimate(lex, r["lexical"][valid]),
            d=_estimate(latent_d(acc, latent.chance, lex), r["d"][valid]),
            control_accuracy=_estimate(ctrl, r["control"][valid]),
            selectivity=_estimate(selectivity(acc, ctrl), r["selectivity"][valid]),
        )
    if latents:
        D_value = float(np.mean([lat.d.value for lat in latents.values()]))
        D_reps = np.mean([r["d"] for r in per_latent.values()], axis=0)[valid]
    else:
        D_value, D_reps = 0.0, np.zeros(0)
    return Decodability(D=_estimate(D_value, D_reps), latents=latents, n_bootstrap=n_bootstrap, seed=seed)


def run_decodability(result: RunResult, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict[str, Decodability]:
    """D for every task of ``result`` that has a probe section (tasks run with --no-probes have none)."""
    return {name: decodability(t.probes, n_bootstrap, seed) for name, t in result.tasks.items() if t.probes is not None}


def _replicates(latent: LatentProbes, weights: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Bootstrap replicates [B] of one latent's accuracy, lexical baseline, d, control accuracy and selectivity;
    chance and the lexical baseline are recomputed on each replicate's rows like the accuracy."""
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
    return {"valid": valid, "accuracy": acc, "lexical": lexical, "d": latent_d(acc, chance, lexical), "control": ctrl,
            "selectivity": acc - ctrl}


def _flags(correct: str) -> np.ndarray:
    return np.frombuffer(correct.encode("ascii"), dtype=np.uint8) - ord("0")


def _estimate(value: float, replicates: np.ndarray) -> Estimate:
    if len(replicates) == 0:
        return Estimate(value, value, value)
    low, high = np.percentile(replicates, CI_PERCENTILES)
    return Estimate(float(value), float(low), float(high))


__all__ = [
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
]
