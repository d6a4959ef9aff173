"""Probe fitting speed: the batched ridge path against a scikit-learn RidgeClassifierCV loop.

Run: ``python -m pytest benchmarks/test_probes.py --benchmark-only``. The standard grid of
the probe issue: S = 9 sites, P = 16 label sets, N = 8192 examples (3/4 for training),
d = 256, K = 4 classes. Ratios are computed from timings taken in the same run and stored
in pytest-benchmark's extra_info (and printed); nothing here asserts a time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeClassifierCV

from fracbench.probes import LinearProbes

S, P, N, D, K = 9, 16, 8192, 256, 4
ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def grid() -> tuple[torch.Tensor, torch.Tensor, int]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(S, N, D, generator=g)
    Y = torch.randint(0, K, (P, N), generator=g)
    for p in range(P):
        directions = torch.randn(K, D, generator=g)
        X += (0.05 + 0.02 * p) * directions[Y[p]]
    return X, Y, 3 * N // 4


def sklearn_loop(make_estimator, X: torch.Tensor, Y: torch.Tensor, n: int, record_alpha=None) -> np.ndarray:
    """Test accuracy [S, P] of one scikit-learn estimator per (site, label set), fitted in a loop;
    ``record_alpha`` receives each fit's selected alpha (ridge), site-major."""
    Xn, Yn = X.double().numpy(), Y.numpy()
    acc = np.empty((S, P))
    for s in range(S):
        for p in range(P):
            estimator = make_estimator().fit(Xn[s, :n], Yn[p, :n])
            acc[s, p] = estimator.score(Xn[s, n:], Yn[p, n:])
            if record_alpha is not None:
                record_alpha(estimator.alpha_)
    return acc


def test_gram_pass_floor(benchmark, grid) -> None:
    """One X^T X pass over the training data in float64: the floor for any exact ridge fit."""
    X, _, n = grid
    Xt = X[:, :n].double()
    benchmark.pedantic(lambda: Xt.transpose(1, 2) @ Xt, rounds=7, iterations=1, warmup_rounds=1)
    TIMES["gram"] = benchmark.stats.stats.min


def test_gram_pass_float32(benchmark, grid) -> None:
    """The same pass in float32 (reported alongside: exactness against scikit-learn needs float64)."""
    X, _, n = grid
    Xt = X[:, :n].contiguous()
    benchmark.pedantic(lambda: Xt.transpose(1, 2) @ Xt, rounds=7, iterations=1, warmup_rounds=1)
    TIMES["gram32"] = benchmark.stats.stats.min


def test_batched_ridge(benchmark, grid) -> None:
    X, Y, n = grid
    probes = benchmark.pedantic(lambda: LinearProbes(alphas=ALPHAS).fit(X[:, :n], Y[:, :n]), rounds=7, iterations=1, warmup_rounds=1)
    TIMES["batched"] = benchmark.stats.stats.min
    acc = probes.score(X[:, n:], Y[:, n:])
    benchmark.extra_info["mean_test_accuracy"] = acc.mean().item()
    TIMES["batched_acc"], TIMES["batched_alpha"] = acc, probes.alpha_


def test_sklearn_ridge_loop(benchmark, grid) -> None:
    X, Y, n = grid
    fitted: list[float] = []
    acc = benchmark.pedantic(lambda: sklearn_loop(lambda: RidgeClassifierCV(alphas=ALPHAS), X, Y, n, fitted.append), rounds=1, iterations=1)
    TIMES["sklearn"] = benchmark.stats.stats.min
    gap = np.abs(TIMES["batched_acc"].numpy() - acc).max() if "batched_acc" in TIMES else float("nan")
    same_alpha = int((TIMES["batched_alpha"].flatten().numpy() == np.array(fitted)).sum()) if "batched_alpha" in TIMES else -1
    benchmark.extra_info.update(max_accuracy_gap_vs_batched=float(gap), alphas_equal=f"{same_alpha}/{S * P}")
    if "batched" in TIMES and "gram" in TIMES:
        speedup = TIMES["sklearn"] / TIMES["batched"]
        over_floor = TIMES["batched"] / TIMES["gram"]
        over_32 = TIMES["batched"] / TIMES.get("gram32", float("nan"))
        benchmark.extra_info.update(speedup_vs_sklearn=speedup, batched_over_gram_pass=over_floor, batched_over_float32_gram_pass=over_32)
        print(f"\nridge: batched {TIMES['batched']:.2f} s, sklearn loop {TIMES['sklearn']:.2f} s "
              f"({speedup:.1f}x), gram pass {TIMES['gram']:.3f} s (batched = {over_floor:.1f}x the floor, {over_32:.1f}x a float32 pass); "
              f"max accuracy gap {gap:.4f}")
    assert gap <= 0.001 and same_alpha == S * P


def test_batched_logistic(benchmark, grid) -> None:
    X, Y, n = grid
    probes = benchmark.pedantic(lambda: LinearProbes(kind="logistic", C=1.0).fit(X[:, :n], Y[:, :n]), rounds=3, iterations=1)
    TIMES["logistic"] = benchmark.stats.stats.min
    TIMES["logistic_acc"] = probes.score(X[:, n:], Y[:, n:])
    benchmark.extra_info.update(
        max_iterations=int(probes.n_iter_.max()), mean_iterations=probes.n_iter_.double().mean().item(),
        mean_test_accuracy=TIMES["logistic_acc"].mean().item(),
    )


def test_sklearn_logistic_loop(benchmark, grid) -> None:
    from sklearn.linear_model import LogisticRegression

    X, Y, n = grid
    acc = benchmark.pedantic(lambda: sklearn_loop(lambda: LogisticRegression(C=1.0, max_iter=1000), X, Y, n), rounds=1, iterations=1)
    gap = float(np.abs(TIMES["logistic_acc"].numpy() - acc).max()) if "logistic_acc" in TIMES else float("nan")
    benchmark.extra_info["max_accuracy_gap_vs_batched"] = gap
    if "logistic" in TIMES:
        speedup = benchmark.stats.stats.min / TIMES["logistic"]
        benchmark.extra_info["speedup_vs_sklearn"] = speedup
        print(f"\nlogistic: batched {TIMES['logistic']:.2f} s, sklearn loop {benchmark.stats.stats.min:.2f} s ({speedup:.1f}x); "
              f"max accuracy gap {gap:.4f}")
    assert gap <= 0.005


STREAM_ROWS, STREAM_CHUNK = 1_000_000, 16_384  # about 61 chunks
STREAM_SCRIPT = """
import time, torch
from fracbench.probes import LinearProbes
rows, chunk, d, P, K = {rows}, {chunk}, {d}, {P}, {K}
def status_kib(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))
# resident memory once torch is imported; the peak is VmHWM, not ru_maxrss (which Linux carries over
# from the forking parent, here the pytest process holding the benchmark grid)
baseline = status_kib("VmRSS")
g = torch.Generator().manual_seed(0)
directions = torch.randn(P, K, d, generator=g)
probes = LinearProbes(alphas={alphas})
start = time.perf_counter()
for first in range(0, rows, chunk):  # each chunk is generated, streamed in and dropped: the rows never coexist
    n = min(chunk, rows - first)
    Y = torch.randint(0, K, (P, n), generator=g)
    X = torch.randn(1, n, d, generator=g)
    for p in range(P):
        X[0] += 0.1 * directions[p][Y[p]]
    probes.partial_fit(X, Y, classes=list(range(K)))
elapsed = time.perf_counter() - start
peak = status_kib("VmHWM")
print(elapsed, (peak - baseline) / 1024, probes.n_rows_seen_)
"""


def test_streaming_ridge_million_rows(benchmark) -> None:
    """partial_fit over 1,000,000 rows x 256 features (16 label sets, 4 classes), in a fresh process
    so that its peak memory is its own; the rows themselves would take 1 GB in float32."""
    import subprocess
    import sys

    script = STREAM_SCRIPT.format(rows=STREAM_ROWS, chunk=STREAM_CHUNK, d=D, P=P, K=K, alphas=ALPHAS)
    out = benchmark.pedantic(lambda: subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout,
                             rounds=1, iterations=1)
    elapsed, peak_mib, rows = out.split()
    data_mib = STREAM_ROWS * D * 4 / 2**20
    benchmark.extra_info.update(rows=int(rows), fit_seconds=float(elapsed), peak_mib_above_baseline=float(peak_mib), rows_float32_mib=data_mib)
    print(f"\nstreaming ridge: {int(rows):,} rows x {D} in {float(elapsed):.1f} s; peak memory {float(peak_mib):.0f} MiB above "
          f"the resident size after importing torch (the rows alone: {data_mib:.0f} MiB)")
    assert int(rows) == STREAM_ROWS
