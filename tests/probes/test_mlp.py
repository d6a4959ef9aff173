"""MLPProbes reads out latents a linear probe cannot, and batching changes no probe's fit."""

from __future__ import annotations

import warnings

import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from fracbench.probes import LinearProbes, MLPProbes
from fracbench.probes import mlp

N_TRAIN, N_TEST, D = 1000, 500, 8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these fits are thousands of tiny steps, where a second thread only
    adds synchronization (and on a busy machine waits for a core); it also makes torch's
    reductions split the same way whatever the batch size, so results are bitwise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
LATENTS = ("xor", "radial", "linear", "linear_3_classes")


def make_latents(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Isotropic features x [1, N, D] and four label sets [4, N]: XOR of the signs of x0 and x1,
    |x[:3]| above its median (both invisible to a linear read-out), and two linear latents."""
    g = torch.Generator().manual_seed(seed)
    n = N_TRAIN + N_TEST
    x = torch.randn(n, D, generator=g)
    proj = x @ torch.randn(D, 3, generator=g)
    Y = torch.stack([
        ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long(),
        (x[:, :3].norm(dim=-1) > 1.54).long(),  # 1.54: the median radius of a 3-d standard normal
        (proj[:, 0] + 0.3 * torch.randn(n, generator=g) > 0).long(),
        proj.argmax(-1),
    ])
    return x[None], Y


@pytest.fixture(scope="module")
def latents() -> tuple[torch.Tensor, torch.Tensor]:
    return make_latents()


@pytest.fixture(scope="module")
def test_accuracy(latents) -> dict[str, dict[str, float]]:
    """Held-out accuracy of the MLP and the ridge probe, per latent."""
    X, Y = latents
    train, test = slice(0, N_TRAIN), slice(N_TRAIN, None)
    out = {}
    for name, probes in (("mlp", MLPProbes()), ("ridge", LinearProbes(kind="ridge"))):
        acc = probes.fit(X[:, train], Y[:, train]).score(X[:, test], Y[:, test])[0]
        out[name] = dict(zip(LATENTS, acc.tolist()))
    return out


def test_reads_out_nonlinear_latents_a_linear_probe_cannot(test_accuracy) -> None:
    for latent in ("xor", "radial"):
        assert test_accuracy["mlp"][latent] >= 0.9, latent
        assert test_accuracy["ridge"][latent] <= 0.6, latent  # chance is 0.5


def test_as_good_as_linear_on_linear_latents(test_accuracy) -> None:
    for latent in ("linear", "linear_3_classes"):
        assert test_accuracy["mlp"][latent] >= 0.9, latent
        assert test_accuracy["mlp"][latent] >= test_accuracy["ridge"][latent] - 0.02, latent


def test_close_to_sklearn_mlp_classifier(latents, test_accuracy) -> None:
    """scikit-learn's MLPClassifier with the same hidden layer (its defaults otherwise, no early
    stopping) on the same standardized features: within 3 points (500 test examples: one
    standard error is ~1 point). Measured: 0.3 to 1.4 points on XOR and radial over 3 seeds."""
    X, Y = latents
    scaler = StandardScaler().fit(X[0, :N_TRAIN].double().numpy())
    train, test = scaler.transform(X[0, :N_TRAIN].double().numpy()), scaler.transform(X[0, N_TRAIN:].double().numpy())
    for p, latent in enumerate(LATENTS[:2]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reference = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=0).fit(train, Y[p, :N_TRAIN].numpy())
        expected = reference.score(test, Y[p, N_TRAIN:].numpy())
        assert abs(test_accuracy["mlp"][latent] - expected) <= 0.03, (latent, test_accuracy["mlp"][latent], expected)


def small_problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sites, three label sets with 2, 3 and 4 classes (labels not 0-based in one)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(2, 300, 6, generator=g)
    Y = torch.stack([
        (X[0, :, 0] * X[0, :, 1] > 0).long() * 4 + 3,  # labels {3, 7}
        torch.bucketize(X[0, :, 2].contiguous(), torch.tensor([-0.5, 0.5])),
        (X[0, :, 3] > 0).long() * 2 + (X[0, :, 4] > 0).long(),
    ])
    return X, Y


FAST = dict(hidden=16, epochs=30, batch_size=64, validation_fraction=0.2, patience=5)


def test_batched_fit_equals_each_probe_fitted_alone() -> None:
    """Bit for bit (one thread, see ``one_thread``), though the batch holds label sets of 2, 3
    and 4 classes and probes that stop at different epochs. With several threads torch may split
    a reduction differently for a different batch size: equal up to float rounding."""
    X, Y = small_problem()
    together = MLPProbes(**FAST).fit(X, Y)
    assert together.coef2_.shape[-1] == 4 and len(together.n_iter_.unique()) > 1
    for s in range(2):
        for p in range(3):
            alone = MLPProbes(**FAST).fit(X[s : s + 1], Y[p : p + 1])
            k = alone.coef2_.shape[-1]
            assert torch.equal(together.coef1_[s, p], alone.coef1_[0, 0]), (s, p)
            assert torch.equal(together.coef2_[s, p, :, :k], alone.coef2_[0, 0]), (s, p)
            assert torch.all(together.coef2_[s, p, :, k:] == 0), "a column a label set does not use is never trained"
            assert together.n_iter_[s, p] == alone.n_iter_[0, 0] and together.best_epoch_[s, p] == alone.best_epoch_[0, 0]
            assert torch.equal(together.predict(X)[s, p], alone.predict(X[s : s + 1])[0, 0]), (s, p)


def test_same_seed_same_probes_other_seed_other_probes() -> None:
    X, Y = small_problem()
    a, b = MLPProbes(**FAST, seed=3).fit(X, Y), MLPProbes(**FAST, seed=3).fit(X, Y)
    for name in ("coef1_", "intercept1_", "coef2_", "intercept2_", "n_iter_"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.coef1_, MLPProbes(**FAST, seed=4).fit(X, Y).coef1_)


def test_mixed_class_counts_per_label_set() -> None:
    X, Y = small_problem()
    probes = MLPProbes(**FAST).fit(X, Y)
    assert probes.classes_[0].tolist() == [[3, 7, -1, -1], [0, 1, 2, -1], [0, 1, 2, 3]]
    assert probes.n_classes_[1].tolist() == [2, 3, 4]
    scores = probes.decision_function(X)
    assert scores.shape == (2, 3, 300, 4)
    assert torch.isinf(scores[:, 0, :, 2:]).all() and torch.isfinite(scores[:, 2]).all()
    assert set(probes.predict(X)[:, 0].unique().tolist()) <= {3, 7}
    assert (probes.score(X, Y)[0, 1:] > 0.8).all()  # site 0 carries label sets 1 and 2 near-linearly


def test_early_stopping_keeps_the_best_validation_epoch() -> None:
    """Noise labels: the validation loss stops improving early, so every probe stops well before
    ``epochs`` and keeps the weights of its best epoch, patience epochs before it stopped."""
    X, _ = small_problem()
    noise = torch.randint(0, 2, (2, 300), generator=torch.Generator().manual_seed(1))
    probes = MLPProbes(**{**FAST, "epochs": 200}).fit(X, noise)
    assert (probes.n_iter_ < 200).all()
    assert torch.equal(probes.n_iter_, probes.best_epoch_ + 5)
    assert torch.isfinite(probes.validation_loss_).all()
    without = MLPProbes(**{**FAST, "validation_fraction": 0.0}).fit(X, noise)
    assert (without.n_iter_ == 30).all() and torch.isnan(without.validation_loss_).all()


def test_scoring_in_chunks_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    X, Y = small_problem()
    probes = MLPProbes(**FAST).fit(X, Y)
    whole = probes.decision_function(X)
    monkeypatch.setattr(mlp, "MAX_CHUNK_ELEMENTS", 2 * 3 * 16 * 7)  # 7 examples a chunk
    assert torch.allclose(probes.decision_function(X), whole, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "value"),
    [("hidden", 0), ("epochs", 0), ("batch_size", 0), ("patience", 0), ("hidden", 2.5), ("lr", 0.0), ("lr", -1e-3),
     ("weight_decay", -1.0), ("validation_fraction", 1.0), ("validation_fraction", -0.1), ("seed", 1.5)],
)
def test_bad_hyperparameters_are_named(name: str, value: object) -> None:
    X, Y = small_problem()
    with pytest.raises(ValueError, match=name):
        MLPProbes(**{name: value}).fit(X, Y)


def test_bad_input_is_named() -> None:
    X, Y = small_problem()
    with pytest.raises(RuntimeError, match="not fitted"):
        MLPProbes().predict(X)
    with pytest.raises(ValueError, match=r"Y must be \[P, N\] or \[S, P, N\]"):
        MLPProbes(**FAST).fit(X, Y[:, :200])
    with pytest.raises(ValueError, match="single class"):
        MLPProbes(**FAST).fit(X, torch.zeros(1, 300, dtype=torch.long))
    bad = X.clone()
    bad[1, 5, 2] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        MLPProbes(**FAST).fit(bad, Y)
    with pytest.raises(ValueError, match="not a torch device"):
        MLPProbes(**FAST, device="gpu0").fit(X, Y)
    with pytest.raises(ValueError, match="none to train on"):
        MLPProbes(validation_fraction=0.9).fit(X[:, :2], torch.tensor([[0, 1]]))
    probes = MLPProbes(**FAST, device="cpu").fit(X, Y)
    with pytest.raises(ValueError, match="fitted on 6"):
        probes.predict(X[:, :, :5])
