"""LinearProbes(kind="ridge") reproduces scikit-learn's RidgeClassifierCV, probe by probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeClassifierCV

from fracbench.probes import LinearProbes

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def make_data(S: int, P: int, N: int, d: int, n_classes: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sites whose features carry each label set's classes with site-dependent noise."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(S, N, d, generator=g)
    Y = torch.stack([torch.randint(0, k, (N,), generator=g) for k in n_classes])  # [P, N]
    for p, k in enumerate(n_classes):
        directions = torch.randn(k, d, generator=g)
        for s in range(S):
            X[s] += (0.3 + 0.4 * s) * directions[Y[p]] / (1 + p)
    return X, Y


def sklearn_fit(X: torch.Tensor, Y: torch.Tensor) -> list[list[RidgeClassifierCV]]:
    return [[RidgeClassifierCV(alphas=ALPHAS).fit(X[s].double().numpy(), Y[p].numpy()) for p in range(Y.shape[0])] for s in range(X.shape[0])]


@pytest.mark.parametrize("n_classes", [[2, 2, 2], [4, 4], [2, 3, 5, 4]])
def test_ridge_matches_ridge_classifier_cv(n_classes: list[int]) -> None:
    X, Y = make_data(S=3, P=len(n_classes), N=400, d=24, n_classes=n_classes)
    train, test = slice(0, 300), slice(300, 400)
    probes = LinearProbes(kind="ridge", alphas=ALPHAS).fit(X[:, train], Y[:, train])
    ours = probes.score(X[:, test], Y[:, test])
    for s, row in enumerate(sklearn_fit(X[:, train], Y[:, train])):
        for p, ref in enumerate(row):
            assert probes.alpha_[s, p].item() == ref.alpha_, (s, p)
            ref_acc = ref.score(X[s, test].double().numpy(), Y[p, test].numpy())
            assert abs(ours[s, p].item() - ref_acc) <= 0.001, (s, p)
            ref_pred = ref.predict(X[s, test].double().numpy())
            assert np.array_equal(probes.predict(X[:, test])[s, p].numpy(), ref_pred)
            # same decision function up to float error (scikit-learn's binary case has one column: class 1's)
            ref_scores = ref.decision_function(X[s, test].double().numpy())
            ours_scores = probes.decision_function(X[:, test])[s, p, :, : len(ref.classes_)].numpy()
            expected = ref_scores if ref_scores.ndim == 2 else ours_scores[:, 1]
            got = ours_scores if ref_scores.ndim == 2 else ref_scores
            assert np.allclose(expected, got, atol=1e-6)


def test_labels_need_not_be_contiguous_and_can_differ_per_site() -> None:
    X, _ = make_data(S=2, P=1, N=200, d=8, n_classes=[2])
    Y = torch.stack([torch.tensor([[3, 7] * 100]), torch.tensor([[0, 1, 2, 1] * 50])])  # [S, P, N]
    probes = LinearProbes().fit(X, Y)
    assert probes.classes_[0, 0].tolist() == [3, 7, -1] and probes.classes_[1, 0].tolist() == [0, 1, 2]
    assert set(probes.predict(X)[0, 0].tolist()) <= {3, 7}


def test_sites_with_different_class_counts_each_match_scikit_learn() -> None:
    """A label set with 2 classes at one site and 5 at another: the fitted columns are padded to
    the widest site, and the padding must not leak into either site's alpha or predictions."""
    X, _ = make_data(S=2, P=1, N=300, d=12, n_classes=[2])
    g = torch.Generator().manual_seed(3)
    Y = torch.stack([torch.randint(0, 2, (1, 300), generator=g), torch.randint(0, 5, (1, 300), generator=g)])  # [S, P, N]
    X[0] += 0.8 * torch.randn(2, 12, generator=g)[Y[0, 0]]
    X[1] += 0.8 * torch.randn(5, 12, generator=g)[Y[1, 0]]
    probes = LinearProbes(alphas=ALPHAS).fit(X, Y)
    for s in range(2):
        ref = RidgeClassifierCV(alphas=ALPHAS).fit(X[s].double().numpy(), Y[s, 0].numpy())
        assert probes.alpha_[s, 0].item() == ref.alpha_, s
        assert np.array_equal(probes.predict(X)[s, 0].numpy(), ref.predict(X[s].double().numpy()))


def test_bad_input_is_named() -> None:
    X, Y = make_data(S=2, P=2, N=50, d=4, n_classes=[2, 2])
    with pytest.raises(ValueError, match=r"Y must be \[P, N\] or \[S, P, N\]"):
        LinearProbes().fit(X, Y[:, :40])
    with pytest.raises(ValueError, match="single class"):
        LinearProbes().fit(X, torch.zeros(2, 50, dtype=torch.long))
    bad = X.clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        LinearProbes().fit(bad, Y)
    with pytest.raises(TypeError, match="integer torch tensor"):
        LinearProbes().fit(X, Y.float())
    with pytest.raises(ValueError, match="positive finite numbers"):
        LinearProbes(alphas=(0.0, 1.0)).fit(X, Y)
    with pytest.raises(RuntimeError, match="not fitted"):
        LinearProbes().predict(X)
    probes = LinearProbes().fit(X, Y)
    with pytest.raises(ValueError, match="never had in fit"):
        probes.score(X, torch.full_like(Y, 2))
    with pytest.raises(ValueError, match="fitted on 4"):
        probes.predict(X[:, :, :3])


def test_selected_alphas_follow_scikit_learn_across_feature_scales() -> None:
    """Feature scale moves the best alpha across the whole grid; every choice must match."""
    g = torch.Generator().manual_seed(1)
    N, d = 120, 30
    X = torch.randn(4, N, d, generator=g)
    w = torch.randn(d, generator=g)
    Y = torch.stack([((X[0] @ w) * scale + torch.randn(N, generator=g) > 0).long() for scale in (0.05, 0.5, 3.0, 30.0)])
    X = X * torch.tensor([0.1, 1.0, 3.0, 10.0]).view(4, 1, 1)
    probes = LinearProbes(alphas=ALPHAS).fit(X, Y)
    chosen = {probes.alpha_[s, p].item() for s in range(4) for p in range(4)}
    assert len(chosen) >= 3, chosen  # the test would be weak if one alpha won everywhere
    for s, row in enumerate(sklearn_fit(X, Y)):
        for p, ref in enumerate(row):
            assert probes.alpha_[s, p].item() == ref.alpha_, (s, p)
            assert np.array_equal(probes.predict(X)[s, p].numpy(), ref.predict(X[s].double().numpy()))


ZOO_SITES = ["hook_embed", "blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]


@pytest.fixture(scope="module")
def zoo_depth_data() -> tuple[torch.Tensor, torch.Tensor, int]:
    """Real activations: the dense zoo model's embedding and residual stream at three sites,
    with bracket_depth's depth and "inside a list" as label sets; 3/4 of the rows to fit."""
    from fracbench.activations import latent_dataset
    from fracbench.models import zoo
    from fracbench.tasks import get_task

    adapter = zoo.load("dense")
    examples = get_task("bracket_depth").examples("train", 40) + get_task("bracket_depth").examples("test", 15)
    data = latent_dataset(adapter, examples, "depth", ZOO_SITES)
    X, y = torch.stack([data.activations[s] for s in ZOO_SITES]), data.labels  # X: [3, N, 96]
    Y = torch.stack([y, (y > 0).long()])  # depth (3 classes here) and "inside a list"
    return X, Y, int(0.75 * X.shape[1])


def test_ridge_matches_scikit_learn_on_zoo_activations(zoo_depth_data) -> None:
    X, Y, n_train = zoo_depth_data
    probes = LinearProbes(alphas=ALPHAS).fit(X[:, :n_train], Y[:, :n_train])
    ours = probes.score(X[:, n_train:], Y[:, n_train:])
    for s, row in enumerate(sklearn_fit(X[:, :n_train], Y[:, :n_train])):
        for p, ref in enumerate(row):
            assert probes.alpha_[s, p].item() == ref.alpha_, (ZOO_SITES[s], p)
            ref_acc = ref.score(X[s, n_train:].double().numpy(), Y[p, n_train:].numpy())
            assert abs(ours[s, p].item() - ref_acc) <= 0.001, (ZOO_SITES[s], p)
    assert ours[2, 0] > ours[0, 0]  # depth is computed by the model, not present in the token embedding


def test_logistic_matches_logistic_regression_on_zoo_activations(zoo_depth_data) -> None:
    from sklearn.linear_model import LogisticRegression

    X, Y, n_train = zoo_depth_data
    ours = LinearProbes(kind="logistic", C=1.0).fit(X[:, :n_train], Y[:, :n_train]).score(X[:, n_train:], Y[:, n_train:])
    for s in range(len(ZOO_SITES)):
        Xs = X[s].double().numpy()
        for p in range(Y.shape[0]):
            ref = LogisticRegression(C=1.0, max_iter=1000).fit(Xs[:n_train], Y[p, :n_train].numpy())
            assert abs(ours[s, p].item() - ref.score(Xs[n_train:], Y[p, n_train:].numpy())) <= 0.005, (ZOO_SITES[s], p)


@pytest.mark.parametrize("n_classes", [[2, 2], [3, 5], [2, 4, 3]])
def test_logistic_matches_logistic_regression(n_classes: list[int]) -> None:
    from sklearn.linear_model import LogisticRegression

    X, Y = make_data(S=2, P=len(n_classes), N=1600, d=16, n_classes=n_classes, seed=3)
    train, test = slice(0, 1200), slice(1200, 1600)
    probes = LinearProbes(kind="logistic", C=1.0).fit(X[:, train], Y[:, train])
    ours = probes.score(X[:, test], Y[:, test])
    converged = LinearProbes(kind="logistic", C=1.0, tol=1e-9).fit(X[:, train], Y[:, train])
    for s in range(2):
        for p, k in enumerate(n_classes):
            Xs = X[s].double().numpy()
            default = LogisticRegression(C=1.0, max_iter=1000).fit(Xs[train], Y[p, train].numpy())
            assert abs(ours[s, p].item() - default.score(Xs[test], Y[p, test].numpy())) <= 0.005, (s, p)
            # against a tightly converged scikit-learn fit, the coefficients themselves agree
            tight = LogisticRegression(C=1.0, max_iter=10_000, tol=1e-10).fit(Xs[train], Y[p, train].numpy())
            coef = converged.coef_[s, p, :k].numpy()
            coef = coef[1:2] - coef[0:1] if k == 2 else coef
            assert np.allclose(coef, tight.coef_, atol=1e-4), (s, p, np.abs(coef - tight.coef_).max())


def test_unknown_kind_and_bad_c_are_refused() -> None:
    X, Y = make_data(S=1, P=1, N=20, d=3, n_classes=[2])
    with pytest.raises(ValueError, match="kind must be one of"):
        LinearProbes(kind="lasso").fit(X, Y)
    with pytest.raises(ValueError, match="C must be positive"):
        LinearProbes(kind="logistic", C=0.0).fit(X, Y)


def test_refitting_on_other_features_starts_afresh() -> None:
    X, Y = make_data(S=1, P=1, N=60, d=6, n_classes=[2])
    probes = LinearProbes().fit(X, Y)
    assert probes.fit(X[:, :, :4], Y).n_features_in_ == 4


def test_logistic_warns_when_it_stops_before_converging() -> None:
    X, Y = make_data(S=1, P=1, N=60, d=6, n_classes=[3])
    with pytest.warns(RuntimeWarning, match="stopped at max_iter=2"):
        LinearProbes(kind="logistic", max_iter=2).fit(X, Y)


def test_a_device_that_is_not_a_torch_device_is_named() -> None:
    X, Y = make_data(S=1, P=1, N=20, d=3, n_classes=[2])
    with pytest.raises(ValueError, match="not a torch device"):
        LinearProbes(device="gpu0").fit(X, Y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_named_before_any_work() -> None:
    X, Y = make_data(S=1, P=1, N=20, d=3, n_classes=[2])
    with pytest.raises(ValueError, match="CUDA is not available"):
        LinearProbes(device="cuda").fit(X, Y)


def test_empty_and_degenerate_inputs_are_named() -> None:
    X, Y = make_data(S=1, P=1, N=20, d=3, n_classes=[2])
    with pytest.raises(ValueError, match="no examples"):
        LinearProbes().fit(X[:, :0], Y[:, :0])
    with pytest.raises(ValueError, match="no label sets"):
        LinearProbes().fit(X, Y[:0])
    with pytest.raises(ValueError, match="negative labels"):
        LinearProbes().fit(X, Y - 1)
    probes = LinearProbes().fit(X, Y)
    bad = X.clone()
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        probes.predict(bad)


def test_weakly_penalized_logistic_probes_still_reach_tol() -> None:
    """Nearly separable, weakly penalized probes: flat objectives whose last steps change the loss
    by less than float32 resolves. They still converge (finished in float64 where needed)."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    X, Y = make_data(S=2, P=2, N=800, d=20, n_classes=[3, 2], seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probes = LinearProbes(kind="logistic", C=100.0, tol=2e-6).fit(X, Y)
    tight = LogisticRegression(C=100.0, max_iter=20_000, tol=1e-10).fit(X[1].double().numpy(), Y[0].numpy())
    error = np.abs(probes.coef_[1, 0].numpy() - tight.coef_).max() / np.abs(tight.coef_).max()
    assert error < 0.01, error
    assert (probes.predict(X)[1, 0].numpy() == tight.predict(X[1].double().numpy())).mean() >= 0.995
