"""Sparsity diagnostics: each statistic hits its known values, and the severity sweep runs on a zoo model."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from fracbench.perturbations.sparsity import (
    METRICS,
    effective_rank,
    hoyer,
    kurtosis,
    severity_slope,
    sparsity_by_severity,
    summarize,
    top_k_energy,
)


def random_signs(n_vectors: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n_vectors, n), generator=g).float() * 2 - 1


def test_hoyer_is_one_for_one_hot_and_zero_for_constant_magnitude() -> None:
    one_hot = 3.0 * torch.eye(16)
    assert torch.allclose(hoyer(one_hot), torch.ones(16, dtype=torch.float64))
    assert torch.allclose(hoyer(0.5 * random_signs(8, 16)), torch.zeros(8, dtype=torch.float64), atol=1e-12)


def test_hoyer_of_zero_vector_and_single_feature_is_zero() -> None:
    assert hoyer(torch.zeros(2, 5)).tolist() == [0.0, 0.0]
    assert hoyer(torch.tensor([[4.0], [-1.0]])).tolist() == [0.0, 0.0]


def test_top_k_energy_is_one_for_one_hot_and_k_over_n_for_uniform() -> None:
    assert torch.allclose(top_k_energy(-2.0 * torch.eye(20)), torch.ones(20, dtype=torch.float64))
    assert torch.allclose(top_k_energy(random_signs(4, 32), k=8), torch.full((4,), 0.25, dtype=torch.float64))


def test_top_k_energy_default_k_is_five_percent_of_features() -> None:
    x = torch.zeros(1, 100)
    x[0, :10] = 1.0  # ten equal entries: the top 5 hold half the energy
    assert top_k_energy(x).item() == pytest.approx(0.5)


def test_kurtosis_matches_scipy_population_excess_kurtosis() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, 50, generator=g).pow(3)  # heavy-tailed, far from 0
    expected = torch.tensor(scipy.stats.kurtosis(x.double().numpy(), axis=1, fisher=True, bias=True))
    assert torch.allclose(kurtosis(x), expected)
    assert kurtosis(torch.full((1, 7), 0.3)).item() == 0.0


def test_effective_rank_of_rank_one_matrix_is_one() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(200, 1, generator=g) @ torch.randn(1, 24, generator=g)
    assert effective_rank(x) == pytest.approx(1.0, abs=1e-4)  # float32 rounding leaves tiny singular values


def test_effective_rank_of_isotropic_gaussian_is_close_to_n() -> None:
    g = torch.Generator().manual_seed(3)
    n = 16
    assert 0.9 * n < effective_rank(torch.randn(4000, n, generator=g)) <= n


def test_summarize_averages_over_vectors() -> None:
    x = torch.cat([torch.eye(8), 0.5 * random_signs(8, 8)])
    stats = summarize(x)
    assert stats.hoyer == pytest.approx(0.5)
    assert stats.n == 8
    assert math.isfinite(stats.effective_rank) and math.isfinite(stats.kurtosis)


def test_severity_slope_recovers_exact_linear_slope() -> None:
    assert severity_slope([0, 1, 2, 3], [0.5 - 0.2 * lvl for lvl in range(4)]) == pytest.approx(-0.2)
    assert severity_slope([3, 0, 1], [7.0, 1.0, 3.0]) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.ones(5), "2-d"),
        (torch.tensor([[1.0, float("nan")]]), "non-finite"),
        (torch.zeros(0, 4), "empty"),
    ],
)
def test_bad_tensors_are_refused_with_the_problem_named(x: torch.Tensor, match: str) -> None:
    for fn in (hoyer, top_k_energy, kurtosis, effective_rank, summarize):
        with pytest.raises(ValueError, match=match):
            fn(x)


def test_top_k_energy_refuses_k_outside_the_features() -> None:
    with pytest.raises(ValueError, match="k must be in 1..n=4"):
        top_k_energy(torch.ones(2, 4), k=5)


def test_severity_slope_refuses_a_single_level() -> None:
    with pytest.raises(ValueError, match="at least 2 distinct severity levels"):
        severity_slope([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="one value per level"):
        severity_slope([0, 1], [0.1])


@pytest.fixture(scope="module")
def dense_sweep():
    from fracbench.models import zoo
    from fracbench.tasks import get_task

    adapter, task = zoo.load("dense"), get_task("bracket_depth")
    sites = ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    run = lambda: sparsity_by_severity(adapter, task, sites, n=32, seed=0)  # noqa: E731
    return task, sites, run(), run()


def test_sparsity_by_severity_covers_every_site_axis_and_level(dense_sweep) -> None:
    task, sites, result, _ = dense_sweep
    assert list(result) == sites
    for site in sites:
        assert sorted(result[site]) == sorted(a.name for a in task.ood_axes)
        for axis in result[site].values():
            assert axis.levels == [0, 1, 2, 3]
            assert len(axis.stats) == 4
            assert set(axis.slopes) == set(METRICS) and all(math.isfinite(v) for v in axis.slopes.values())
            for s in axis.stats:
                assert all(math.isfinite(getattr(s, m)) for m in METRICS)
                assert 0.0 <= s.hoyer <= 1.0 and 0.0 <= s.top_k_energy <= 1.0
                assert 1.0 <= s.effective_rank <= min(31, s.n)


def test_sparsity_by_severity_is_deterministic_for_a_seed(dense_sweep) -> None:
    _, _, first, second = dense_sweep
    assert first == second


def test_sparsity_by_severity_shares_the_test_split_across_axes(dense_sweep) -> None:
    _, sites, result, _ = dense_sweep
    level0 = {axis.stats[0] for axis in result[sites[0]].values()}
    assert len(level0) == 1
