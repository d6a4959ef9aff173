"""Scoring: D from raw per-row correctness, its definition's edge cases, and the cluster bootstrap."""

from __future__ import annotations

import pytest

from fracbench.scoring import decodability, latent_d, normalized, run_decodability, selectivity
from tests.conftest import probe_section


def test_normalization_and_selectivity_follow_the_definition() -> None:
    assert normalized(0.5, 0.5) == 0.0 and normalized(1.0, 0.5) == 1.0 and normalized(0.25, 0.5) == -0.5
    assert selectivity(0.9, 0.6, 0.5) == pytest.approx(normalized(0.9, 0.5) - normalized(0.6, 0.5))
    assert latent_d(0.9, 0.6, 0.5) == pytest.approx(0.6)
    assert latent_d(0.6, 0.9, 0.5) == 0.0  # a control the probe decodes better than the latent: clipped at 0
    assert latent_d(1.0, 0.0, 0.5) == 1.0  # (1 - 0) / 0.5 = 2, clipped at 1
    assert latent_d(1.0, 0.0, 1.0) == 0.0  # test rows of a single class show nothing above chance


def test_D_is_the_mean_of_the_latents_d_recomputed_from_the_raw_flags() -> None:
    # 4 test examples, 2 rows each; latent a: 7/8 right, control 3/8, chance 4/8 -> d = (7/8 - 3/8) / (1/2) = 1
    # latent b: 6/8 right, control 5/8, chance 6/8 -> d = (1/8) / (2/8) = 0.5
    section = probe_section(
        {
            "a": ("11111110", "10100100", [0, 1, 0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 2, 2, 3, 3]),
            "b": ("11110011", "11100011", [0, 0, 0, 1, 0, 0, 1, 0], [0, 0, 1, 1, 2, 2, 3, 3]),
        },
        n_test_examples=4,
    )
    score = decodability(section)
    assert score.latents["a"].accuracy.value == 7 / 8 and score.latents["a"].control_accuracy.value == 3 / 8
    assert score.latents["a"].chance == 0.5 and score.latents["a"].d.value == 1.0
    assert score.latents["b"].d.value == pytest.approx(0.5)
    assert score.D.value == pytest.approx(0.75)
    for e in [score.D, *(lat.d for lat in score.latents.values()), *(lat.accuracy for lat in score.latents.values())]:
        assert 0 <= e.low <= e.value <= e.high <= 1


def test_the_bootstrap_is_deterministic_and_seeded() -> None:
    section = probe_section({"a": ("1101101011", "0100100010", [0, 1] * 5, [0, 0, 1, 2, 2, 3, 4, 4, 5, 5])}, n_test_examples=6)
    assert decodability(section) == decodability(section)
    assert decodability(section, seed=1) != decodability(section)
    assert decodability(section, seed=1) == decodability(section, seed=1)


def test_the_bootstrap_resamples_examples_not_rows() -> None:
    # One example holds every row: resampling examples can only redraw that example,
    # so the interval has no width (a row bootstrap would give a wide one).
    section = probe_section({"a": ("1101", "0100", [0, 1, 0, 1], [0, 0, 0, 0])}, n_test_examples=1)
    d = decodability(section).latents["a"].accuracy
    assert d.low == d.value == d.high == 0.75


def test_D_interval_is_joint_across_latents() -> None:
    # Two identical latents: with the same example draw for both, every replicate's D is
    # exactly each latent's d, so the intervals coincide.
    latent = ("1101101011", "0100100010", [0, 1] * 5, [0, 0, 1, 2, 2, 3, 4, 4, 5, 5])
    score = decodability(probe_section({"a": latent, "b": latent}, n_test_examples=6))
    assert (score.D.low, score.D.high) == (score.latents["a"].d.low, score.latents["a"].d.high)
    assert score.D.low < score.D.high


def test_run_decodability_skips_tasks_without_probes(tmp_path) -> None:
    from tests.test_results import make_result

    result = make_result()
    assert run_decodability(result) == {}
    result.tasks["quote_close"].probes = probe_section({"a": ("10", "00", [0, 1], [0, 1])}, n_test_examples=2)
    assert set(run_decodability(result)) == {"quote_close"}


def test_bad_bootstrap_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="n_bootstrap must be at least 1"):
        decodability(probe_section({"a": ("10", "00", [0, 1], [0, 1])}, n_test_examples=2), n_bootstrap=0)
