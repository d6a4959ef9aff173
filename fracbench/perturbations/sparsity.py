"""Activation-sparsity diagnostic: how concentrated a model's activations get as inputs shift.

arXiv:2603.03415 ("Farther the shift, sparser the representation") reports that
representations grow sparser the farther inputs lie from the training distribution.
Per site and split we summarize the activation vectors at the prompt's last token
(Hoyer sparsity, top-k energy, excess kurtosis, effective rank) and fit their slope
against OOD severity. Reported, not scored.

The tensor functions take ``x`` of shape [N, n] (N vectors of n features) and compute in
float64; models are touched only through the adapter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..activations import capture
from ..models.adapter import ModelAdapter
from ..tasks import Task

METRICS = ("hoyer", "top_k_energy", "kurtosis", "effective_rank")  # the stats whose slope is reported
ZERO_VARIANCE_RTOL = 1e-12  # a spread below this times max|x| is rounding noise, not signal


def _as_matrix(x: torch.Tensor) -> torch.Tensor:
    """``x`` checked to be a non-empty, finite [N, n] float tensor, as float64."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of shape [N, n], got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d tensor [N vectors, n features], got ndim={x.ndim} (shape {tuple(x.shape)}); reshape to [N, -1]")
    if x.numel() == 0:
        raise ValueError(f"expected a non-empty [N, n] tensor, got empty shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected a float tensor, got dtype {x.dtype}")
    x = x.detach().to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"x has {int((~torch.isfinite(x)).sum())} non-finite values (NaN or inf); sparsity is undefined for them")
    return x


def hoyer(x: torch.Tensor) -> torch.Tensor:
    """Hoyer sparsity per vector [N]: (sqrt(n) - ||x||_1/||x||_2) / (sqrt(n) - 1).

    0 for a constant-magnitude vector, 1 for a one-hot one; the all-zero vector and n == 1
    give 0. Clamped to [0, 1] against rounding (mathematically 1 <= L1/L2 <= sqrt(n)).
    """
    x = _as_matrix(x)
    n = x.shape[1]
    if n == 1:
        return torch.zeros(x.shape[0], dtype=torch.float64)
    l1, l2 = x.abs().sum(dim=1), x.norm(dim=1)
    ratio = torch.where(l2 > 0, l1 / l2.clamp_min(torch.finfo(torch.float64).tiny), math.sqrt(n))  # zero vector -> 0
    return ((math.sqrt(n) - ratio) / (math.sqrt(n) - 1)).clamp(0.0, 1.0)


def top_k_energy(x: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """Fraction of squared L2 norm in each vector's k largest-|x| entries [N]: sum_top-k x_i^2 / sum x_i^2.

    ``k=None`` takes k = max(1, round(0.05 n)) (the top 5% of features). The all-zero vector
    gives k/n, the value of a constant-magnitude vector (as Hoyer gives it 0).
    """
    x = _as_matrix(x)
    n = x.shape[1]
    k = max(1, round(0.05 * n)) if k is None else k
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..n={n}, got {k}")
    energy = x.square()
    total = energy.sum(dim=1)
    top = energy.topk(k, dim=1).values.sum(dim=1)
    return torch.where(total > 0, top / total.clamp_min(torch.finfo(torch.float64).tiny), k / n)


def kurtosis(x: torch.Tensor) -> torch.Tensor:
    """Excess kurtosis of each vector's entries [N]: m4 / m2^2 - 3 with population central moments.

    A vector with zero variance (up to rounding: std below 1e-12 max|x|) gives 0.
    """
    x = _as_matrix(x)
    d = x - x.mean(dim=1, keepdim=True)
    m2, m4 = d.square().mean(dim=1), d.pow(4).mean(dim=1)
    flat = m2.sqrt() <= ZERO_VARIANCE_RTOL * x.abs().amax(dim=1)
    return torch.where(flat, 0.0, m4 / torch.where(flat, 1.0, m2).square() - 3.0)


def effective_rank(x: torch.Tensor) -> float:
    """Effective rank of the column-centred matrix (Roy & Vetterli 2007): exp(-sum p_i log p_i), p = s / sum(s).

    s are the singular values; the result lies in [1, min(N - 1, n)] and is one number for
    the whole [N, n] matrix. A matrix whose rows are all equal (centred to zero) gives 0.
    """
    x = _as_matrix(x)
    s = torch.linalg.svdvals(x - x.mean(dim=0, keepdim=True))
    if s.max() <= ZERO_VARIANCE_RTOL * x.abs().max() * math.sqrt(x.shape[0]):
        return 0.0
    p = s / s.sum()
    p = p[p > 0]  # 0 log 0 = 0
    return float(torch.exp(-(p * p.log()).sum()))


@dataclass(frozen=True)
class SparsityStats:
    """Sparsity summary of one set of activation vectors: means over vectors, effective rank of the matrix."""

    hoyer: float  # mean Hoyer sparsity, in [0, 1]
    top_k_energy: float  # mean energy fraction in the top max(1, round(0.05 n)) entries, in [0, 1]
    kurtosis: float  # mean excess kurtosis of a vector's entries (0 for Gaussian-like)
    effective_rank: float  # of the centred [N, n] matrix, in [1, min(N - 1, n)]
    n: int  # features per vector


def summarize(x: torch.Tensor) -> SparsityStats:
    """The :class:`SparsityStats` of the [N, n] vectors ``x``."""
    x = _as_matrix(x)
    return SparsityStats(
        hoyer=float(hoyer(x).mean()),
        top_k_energy=float(top_k_energy(x).mean()),
        kurtosis=float(kurtosis(x).mean()),
        effective_rank=effective_rank(x),
        n=x.shape[1],
    )


def severity_slope(levels: Sequence[int], values: Sequence[float]) -> float:
    """Ordinary least-squares slope of ``values`` against severity ``levels`` (level 0 = the test split)."""
    if len(levels) != len(values):
        raise ValueError(f"got {len(levels)} levels for {len(values)} values; give one value per level")
    if len(set(levels)) < 2:
        raise ValueError(f"a slope needs at least 2 distinct severity levels, got {sorted(set(levels))}")
    lx, vy = torch.tensor(levels, dtype=torch.float64), torch.tensor(values, dtype=torch.float64)
    dx = lx - lx.mean()
    return float((dx * (vy - vy.mean())).sum() / dx.square().sum())


@dataclass(frozen=True)
class AxisSparsity:
    """Sparsity at one site along one OOD axis: level 0 is the test split, then levels 1..L."""

    levels: list[int]  # 0, 1, ..., L
    stats: list[SparsityStats]  # one per level
    slopes: dict[str, float]  # metric name (see METRICS) -> OLS slope over the levels


def axis_sparsity(levels: list[int], stats: list[SparsityStats]) -> AxisSparsity:
    """An :class:`AxisSparsity` with the slope of every metric in METRICS."""
    slopes = {m: severity_slope(levels, [getattr(s, m) for s in stats]) for m in METRICS}
    return AxisSparsity(levels, stats, slopes)


def sparsity_by_severity(
    adapter: ModelAdapter,
    task: Task,
    sites: Sequence[str],
    n: int,
    seed: int,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, dict[str, AxisSparsity]]:
    """Site -> OOD axis -> sparsity of last-token activations on ``n`` examples per split, test then each level."""
    if n < 2:
        raise ValueError(f"n must be >= 2 examples per split (effective rank centres over them), got {n}")
    adapter.check_sites(sites)
    splits = [s for s in task.splits() if s.name == "test" or s.is_ood]
    by_split: dict[str, dict[str, SparsityStats]] = {}  # split name -> site -> stats
    for split in tqdm(splits, desc=f"sparsity {task.name}", disable=not progress, leave=False):
        texts = [ex.prompt for ex in task.examples(split.name, n, seed)]
        acts = capture(adapter, texts, sites, char_positions=None, batch_size=batch_size).activations
        by_split[split.name] = {site: summarize(a.reshape(a.shape[0], -1)) for site, a in acts.items()}
    out: dict[str, dict[str, AxisSparsity]] = {}
    for site in sites:
        out[site] = {}
        for axis in task.ood_axes:
            levels = list(range(axis.n_levels + 1))
            names = ["test"] + [f"ood/{axis.name}/{lvl}" for lvl in levels[1:]]
            out[site][axis.name] = axis_sparsity(levels, [by_split[name][site] for name in names])
    return out
