"""MLP probe speed and accuracy: batched MLPProbes against a scikit-learn MLPClassifier loop.

Run: ``python -m pytest benchmarks/test_mlp_probes.py --benchmark-only -s``. Grid: S = 3 sites,
P = 8 label sets, N = 4096 examples (3/4 for training), d = 128. Label set p reads
coordinates 4p..4p+3 of the features through one of four functions (XOR of two signs, a
radius, a linear threshold, a 3-class product), more weakly at later sites. Accuracies,
the linear-vs-nonlinear gap and the speed ratio go to pytest-benchmark's extra_info (and
are printed); nothing here asserts a time.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fracbench.probes import LinearProbes, MLPProbes

S, P, N, D, HIDDEN = 3, 8, 4096, 128, 64
KINDS = ("xor", "radial", "linear", "product_3_classes")
RESULTS: dict[str, object] = {}


@pytest.fixture(scope="module")
def grid() -> tuple[torch.Tensor, torch.Tensor, int]:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(N, D, generator=g)  # the latent coordinates every site sees
    labels = []
    for p in range(P):
        a, b, c, e = z[:, 4 * p : 4 * p + 4].unbind(-1)
        kind = KINDS[p % 4]
        if kind == "xor":
            labels.append(((a > 0) ^ (b > 0)).long())
        elif kind == "radial":
            labels.append((torch.stack([a, b, c], -1).norm(dim=-1) > 1.54).long())
        elif kind == "linear":
            labels.append((a + b + c + e > 0).long())
        else:
            labels.append(torch.bucketize((a * b).contiguous(), torch.tensor([-0.3, 0.3])))
    Y = torch.stack(labels)  # [P, N]
    # site s: the latents plus isotropic noise of std 0.25 * s, in a random rotation
    X = torch.stack([(z + 0.25 * s * torch.randn(N, D, generator=g)) @ torch.linalg.qr(torch.randn(D, D, generator=g))[0] for s in range(S)])
    return X, Y, 3 * N // 4


def per_kind(acc: np.ndarray) -> dict[str, float]:
    """Mean test accuracy [S, P] per latent kind."""
    return {kind: float(acc[:, i::4].mean()) for i, kind in enumerate(KINDS)}


def test_batched_mlp(benchmark, grid) -> None:
    X, Y, n = grid
    probes = benchmark.pedantic(lambda: MLPProbes(hidden=HIDDEN).fit(X[:, :n], Y[:, :n]), rounds=1, iterations=1)
    RESULTS["mlp_time"] = benchmark.stats.stats.min
    RESULTS["mlp_epochs"] = int(probes.n_iter_.sum())  # probe-epochs trained, summed over probes
    acc = probes.score(X[:, n:], Y[:, n:]).numpy()
    RESULTS["mlp_acc"] = acc
    benchmark.extra_info.update(test_accuracy=per_kind(acc), epochs_max=int(probes.n_iter_.max()), epochs_mean=float(probes.n_iter_.float().mean()))
    print(f"\nmlp: {RESULTS['mlp_time']:.1f} s, test accuracy per latent kind {per_kind(acc)}, epochs {probes.n_iter_.tolist()}")


def test_batched_ridge(benchmark, grid) -> None:
    """The linear read-out at the same sites: the gap is MLP minus ridge held-out accuracy."""
    X, Y, n = grid
    probes = benchmark.pedantic(lambda: LinearProbes(kind="ridge").fit(X[:, :n], Y[:, :n]), rounds=1, iterations=1)
    acc = probes.score(X[:, n:], Y[:, n:]).numpy()
    benchmark.extra_info["test_accuracy"] = per_kind(acc)
    print(f"\nridge: test accuracy per latent kind {per_kind(acc)}")
    if "mlp_acc" in RESULTS:
        gap = per_kind(RESULTS["mlp_acc"] - acc)
        benchmark.extra_info["nonlinear_gap"] = gap
        print(f"\nlinear-vs-nonlinear gap per latent kind: {gap}")


def test_sklearn_mlp_loop(benchmark, grid) -> None:
    """One MLPClassifier per (site, label set): same hidden layer, standardized features, its own
    early stopping on a 10% validation slice (scikit-learn's counterpart of ours)."""
    X, Y, n = grid
    Xn, Yn = X.double().numpy(), Y.numpy()

    epochs = np.empty((S, P), dtype=int)

    def loop() -> np.ndarray:
        acc = np.empty((S, P))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for s in range(S):
                for p in range(P):
                    clf = make_pipeline(StandardScaler(), MLPClassifier((HIDDEN,), early_stopping=True, random_state=0))
                    acc[s, p] = clf.fit(Xn[s, :n], Yn[p, :n]).score(Xn[s, n:], Yn[p, n:])
                    epochs[s, p] = clf[-1].n_iter_
        return acc

    acc = benchmark.pedantic(loop, rounds=1, iterations=1)
    seconds = benchmark.stats.stats.min
    benchmark.extra_info.update(test_accuracy=per_kind(acc), epochs_mean=float(epochs.mean()))
    if "mlp_acc" in RESULTS:
        diff = RESULTS["mlp_acc"] - acc
        speedup = seconds / RESULTS["mlp_time"]
        # scikit-learn's early stopping (validation accuracy, tol 1e-4) quits sooner: compare time per probe-epoch too
        per_epoch = (seconds / epochs.sum()) / (RESULTS["mlp_time"] / RESULTS["mlp_epochs"])
        benchmark.extra_info.update(
            speedup_vs_sklearn=speedup, speedup_per_probe_epoch=per_epoch,
            mean_accuracy_minus_sklearn=float(diff.mean()), accuracy_minus_sklearn=per_kind(diff),
        )
        print(f"\nmlp: batched {RESULTS['mlp_time']:.1f} s ({RESULTS['mlp_epochs']} probe-epochs), sklearn loop {seconds:.1f} s "
              f"({epochs.sum()} probe-epochs): {speedup:.1f}x, {per_epoch:.1f}x per probe-epoch; accuracy minus sklearn per kind {per_kind(diff)}")
