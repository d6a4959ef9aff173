"""Streaming ridge (partial_fit): sufficient statistics give the same probes as fitting all rows at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge, RidgeClassifier

from fracbench.probes import LinearProbes

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def make_stream(N: int = 1500, d: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sites, two label sets (3 and 2 classes); site 1 is noisier, so alphas differ."""
    g = torch.Generator().manual_seed(seed)
    Y = torch.stack([torch.randint(0, 3, (N,), generator=g), torch.randint(0, 2, (N,), generator=g)])
    X = torch.randn(2, N, d, generator=g, dtype=torch.float64) * torch.tensor([1.0, 4.0]).view(2, 1, 1)
    for p, k in enumerate((3, 2)):
        X += 0.4 * torch.randn(k, d, generator=g, dtype=torch.float64)[Y[p]]
    return X, Y


def stream(probes: LinearProbes, X: torch.Tensor, Y: torch.Tensor, chunk: int) -> LinearProbes:
    for start in range(0, X.shape[1], chunk):
        probes.partial_fit(X[:, start : start + chunk], Y[:, start : start + chunk], classes=[[0, 1, 2], [0, 1]])
    return probes


def test_chunking_does_not_change_the_probes() -> None:
    X, Y = make_stream()
    whole = stream(LinearProbes(alphas=ALPHAS), X, Y, chunk=1500)
    pieces = stream(LinearProbes(alphas=ALPHAS), X, Y, chunk=137)
    assert torch.equal(whole.alpha_, pieces.alpha_)
    assert torch.allclose(whole.coef_, pieces.coef_, atol=1e-10)
    assert torch.allclose(whole.intercept_, pieces.intercept_, atol=1e-10)


def test_alpha_is_the_one_with_least_held_out_error_and_is_refitted_on_all_rows() -> None:
    X, Y = make_stream()
    probes = stream(LinearProbes(alphas=ALPHAS), X, Y, chunk=300)
    held_out = np.arange(X.shape[1]) % 5 == 4
    for s in range(2):
        Xs = X[s].numpy()
        for p, k in enumerate((3, 2)):
            # held-out squared error of each alpha, straight from scikit-learn's Ridge on the one-vs-all targets
            targets = np.where(np.eye(k)[Y[p].numpy()] > 0, 1.0, -1.0)
            errors = [np.mean((Ridge(alpha=a).fit(Xs[~held_out], targets[~held_out]).predict(Xs[held_out]) - targets[held_out]) ** 2) for a in ALPHAS]
            assert probes.held_out_mse_[s, p].numpy() == pytest.approx(errors, rel=1e-9)
            chosen = ALPHAS[int(np.argmin(errors))]
            assert probes.alpha_[s, p].item() == chosen
            ref = RidgeClassifier(alpha=chosen).fit(Xs, Y[p].numpy())
            coef = probes.coef_[s, p, :k].numpy()
            expected = ref.coef_ if k > 2 else np.stack([-ref.coef_.ravel(), ref.coef_.ravel()])  # binary: one column, class 1's
            assert np.allclose(coef, expected, atol=1e-9)
            assert np.array_equal(probes.predict(X)[s, p].numpy(), ref.predict(Xs))
    assert len({a.item() for a in probes.alpha_.flatten()}) >= 2  # the check above is weak if one alpha won everywhere


def test_explicit_held_out_rows_and_a_single_alpha() -> None:
    X, Y = make_stream()
    mask = torch.zeros(X.shape[1], dtype=torch.bool)
    mask[:300] = True
    explicit = LinearProbes(alphas=ALPHAS).partial_fit(X, Y, classes=[[0, 1, 2], [0, 1]], held_out=mask)
    assert explicit.held_out_mse_.shape == (2, 2, len(ALPHAS))
    single = LinearProbes(alphas=(10.0,)).partial_fit(X, Y, classes=[[0, 1, 2], [0, 1]])
    assert single.held_out_mse_ is None and bool((single.alpha_ == 10.0).all())
    ref = RidgeClassifier(alpha=10.0).fit(X[0].numpy(), Y[0].numpy())
    assert np.allclose(single.coef_[0, 0].numpy(), ref.coef_, atol=1e-9)


def test_streaming_refuses_what_it_cannot_do() -> None:
    X, Y = make_stream(N=40)
    with pytest.raises(ValueError, match="needs classes"):
        LinearProbes().partial_fit(X, Y)
    with pytest.raises(ValueError, match="not in classes"):
        LinearProbes().partial_fit(X, Y, classes=[[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="streams ridge probes only"):
        LinearProbes(kind="logistic").partial_fit(X, Y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="no held-out rows"):
        LinearProbes().partial_fit(X[:, :4], Y[:, :4], classes=[0, 1, 2])
    with pytest.raises(ValueError, match="held_out must be a bool tensor"):
        LinearProbes().partial_fit(X, Y, classes=[0, 1, 2], held_out=torch.zeros(3, dtype=torch.bool))
    probes = LinearProbes().partial_fit(X, Y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="first partial_fit call had 2"):
        probes.partial_fit(X, Y[:1])


def test_a_refused_batch_leaves_the_stream_as_it_was() -> None:
    X, Y = make_stream(N=200)
    with pytest.raises(ValueError, match="no held-out rows"):
        LinearProbes().partial_fit(X[:, :4], Y[:, :4], classes=[0, 1, 2])
    probes = LinearProbes()
    with pytest.raises(ValueError, match="not in classes"):
        probes.partial_fit(X, Y, classes=[[0, 1], [0, 1]])
    with pytest.raises(RuntimeError, match="not fitted"):
        probes.predict(X)  # the refused first call fitted nothing
    probes.partial_fit(X[:, :100], Y[:, :100], classes=[[0, 1, 2], [0, 1]])
    before = (probes.coef_.clone(), probes.n_rows_seen_, probes.stats_.n.clone())
    bad = Y[:, 100:].clone()
    bad[0, 5] = 7
    with pytest.raises(ValueError, match="not in classes"):
        probes.partial_fit(X[:, 100:], bad)
    with pytest.raises(ValueError, match="held_out must be"):
        probes.partial_fit(X[:, 100:], Y[:, 100:], held_out=torch.ones(3, dtype=torch.bool))
    assert torch.equal(probes.coef_, before[0]) and probes.n_rows_seen_ == before[1] and torch.equal(probes.stats_.n, before[2])


def test_every_row_held_out_is_refused() -> None:
    X, Y = make_stream(N=50)
    with pytest.raises(ValueError, match="every row so far is held out"):
        LinearProbes().partial_fit(X, Y, classes=[0, 1, 2], held_out=torch.ones(50, dtype=torch.bool))
