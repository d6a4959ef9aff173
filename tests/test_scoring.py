"""Scoring: D from raw per-row correctness, its definition's edge cases, and the cluster bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from fracbench.scoring import Estimate, Verdict, decodability, latent_d, model_scores, normalized, run_decodability, selectivity
from tests.conftest import probe_section


def test_d_is_the_accuracy_normalized_above_the_larger_of_chance_and_the_lexical_baseline() -> None:
    assert normalized(0.5, 0.5) == 0.0 and normalized(1.0, 0.5) == 1.0 and normalized(0.25, 0.5) == -0.5
    assert latent_d(0.9, 0.5, 0.0) == pytest.approx(0.8)  # floor = chance
    assert latent_d(0.9, 0.5, 0.8) == pytest.approx(0.5)  # floor = lexical: (0.9 - 0.8) / 0.2
    assert latent_d(0.7, 0.5, 0.8) == 0.0  # below what the token alone predicts: clipped at 0
    assert latent_d(1.0, 0.5, 1.0) == 0.0  # the token determines the latent: a perfect probe shows nothing
    assert latent_d(1.0, 1.0, 0.0) == 0.0  # test rows of a single class show nothing above chance
    assert latent_d(0.9, 0.5, 0.6, 0.8) == pytest.approx(0.5)  # floor = the untrained twin's probe: (0.9 - 0.8) / 0.2
    assert latent_d(0.8, 0.5, 0.6, 0.85) == 0.0  # no better than the architecture untrained: nothing training put there
    assert selectivity(0.9, 0.6) == pytest.approx(0.3)  # Hewitt & Liang's, a diagnostic


def test_D_is_the_mean_of_the_latents_d_recomputed_from_the_raw_flags() -> None:
    # 4 test examples, 2 rows each.
    # latent a: 7/8 right, chance 4/8, lexical 6/8 -> floor 6/8, d = (7/8 - 6/8) / (2/8) = 0.5
    # latent b: 7/8 right, chance 6/8, lexical 3/8 -> floor 6/8, d = 0.5
    # The controls (a: 8/8, better than the probe; b: 0/8) do not enter d.
    section = probe_section(
        {
            "a": ("11111110", "11111111", [0, 1, 0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 2, 2, 3, 3], "11111100"),
            "b": ("11110111", "00000000", [0, 0, 0, 1, 0, 0, 1, 0], [0, 0, 1, 1, 2, 2, 3, 3], "11100000"),
        },
        n_test_examples=4,
    )
    score = decodability(section)
    a, b = score.latents["a"], score.latents["b"]
    assert a.accuracy.value == 7 / 8 and a.lexical.value == 6 / 8 and a.chance == 0.5 and a.floor == 6 / 8
    assert a.d.value == pytest.approx(0.5) and b.d.value == pytest.approx(0.5) and b.floor == 6 / 8
    assert a.control_accuracy.value == 1.0 and a.selectivity.value == pytest.approx(-1 / 8)
    assert b.control_accuracy.value == 0.0 and b.selectivity.value == pytest.approx(7 / 8)
    assert score.D.value == pytest.approx(0.5) and score.version == "3"
    for e in [score.D, *(lat.d for lat in score.latents.values()), *(lat.accuracy for lat in score.latents.values()),
              *(lat.lexical for lat in score.latents.values())]:
        assert 0 <= e.low <= e.value <= e.high <= 1


def test_an_untrained_twin_that_decodes_as_well_as_the_model_leaves_nothing_to_credit() -> None:
    # the random-init control: the twin's probe is right on the same rows as the model's, so d = 0 in every replicate
    section = probe_section({"a": ("11111110", "00000000", [0, 1] * 4, [0, 0, 1, 1, 2, 2, 3, 3], "10101010", "11111110")},
                            n_test_examples=4)
    latent = decodability(section).latents["a"]
    assert latent.untrained.value == latent.accuracy.value == 7 / 8 and latent.floor == 7 / 8
    assert latent.d.value == latent.d.high == 0.0
    without = probe_section({"a": ("11111110", "00000000", [0, 1] * 4, [0, 0, 1, 1, 2, 2, 3, 3], "10101010")}, n_test_examples=4)
    assert decodability(without).latents["a"].untrained is None and decodability(without).latents["a"].d.value == pytest.approx(0.75)


def test_the_bootstrap_is_deterministic_and_seeded() -> None:
    section = probe_section({"a": ("1101101011", "0100100010", [0, 1] * 5, [0, 0, 1, 2, 2, 3, 4, 4, 5, 5])}, n_test_examples=6)
    assert decodability(section) == decodability(section)
    assert decodability(section, seed=1) != decodability(section)
    assert decodability(section, seed=1) == decodability(section, seed=1)


def test_the_bootstrap_resamples_examples_not_rows() -> None:
    # One example holds every row: resampling examples can only redraw that example,
    # so the interval has no width (a row bootstrap would give a wide one).
    section = probe_section({"a": ("1101", "0100", [0, 1, 0, 1], [0, 0, 0, 0], "1100")}, n_test_examples=1)
    latent = decodability(section).latents["a"]
    assert latent.accuracy.low == latent.accuracy.value == latent.accuracy.high == 0.75
    assert latent.lexical.low == latent.lexical.value == latent.lexical.high == 0.5


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


def _task(verdict: str, D: float, C: float | None, offset: float) -> Verdict:
    """A task's verdict with 1000 replicates spread around its point estimates."""
    spread = np.linspace(-0.05, 0.05, 1000) + offset
    est = (lambda v: None if v is None else Estimate(v, v - 0.05, v + 0.05))
    reps = {"D": D + spread} | ({} if C is None else {"C": C + spread[::-1], "F": D - C + 2 * spread})
    return Verdict(est(D), est(C), None if C is None else est(D - C), {}, verdict, [f"{verdict} reason"], replicates=reps)


def test_model_scores_are_task_means_with_an_interval_from_independent_task_draws() -> None:
    verdicts = {"a": _task("coherent", 0.9, 0.7, 0.0), "b": _task("FRACTURED", 0.8, 0.3, 0.0), "c": _task("does not decode", 0.1, None, 0.0)}
    scores = model_scores(None, verdicts=verdicts)
    assert scores.D.value == pytest.approx(0.6) and scores.C.value == pytest.approx(0.5)  # c ran no circuit: not in C
    assert scores.F.value == pytest.approx(0.35)  # F over the tasks with both: (0.2 + 0.5) / 2
    assert scores.D.low < scores.D.value < scores.D.high
    # the tasks' replicates are shuffled independently: a mean of 2 is narrower than either task's own +-0.05
    assert scores.C.high - scores.C.low < 0.095
    assert model_scores(None, verdicts=verdicts) == scores  # seeded: the same numbers every time
    assert scores.verdict == "inconclusive"  # one label each: no majority
    assert scores.reasons[0] == "FRACTURED on 1, coherent on 1, does not decode on 1 of 3 tasks"
    assert scores.reasons[1:] == ["a: coherent (coherent reason)", "b: FRACTURED (FRACTURED reason)",
                                  "c: does not decode (does not decode reason)"]


@pytest.mark.parametrize("labels, expected", [
    (["coherent", "does not decode"], "inconclusive"),
    (["coherent", "coherent", "FRACTURED"], "coherent"),
    (["FRACTURED", "FRACTURED", "coherent"], "FRACTURED"),
    (["FRACTURED", "coherent", "inconclusive", "coherent"], "inconclusive"),  # a half is not a majority
    (["coherent"] + ["does not decode"] * 5, "does not decode"),  # scores v2 called this model coherent
    (["FRACTURED"] + ["coherent"] * 5, "coherent"),  # scores v2 flagged it FRACTURED
    (["no behaviour", "no behaviour", "coherent"], "no behaviour"),
    (["does not decode", "does not decode"], "does not decode"),
    (["not scored", "not scored"], "not scored"),
])
def test_the_model_verdict_is_the_label_of_a_majority_of_its_tasks(labels: list[str], expected: str) -> None:
    verdicts = {f"t{i}": _task(label, 0.9, 0.7, 0.0) for i, label in enumerate(labels)}
    assert model_scores(None, verdicts=verdicts).verdict == expected


def test_a_task_without_behaviour_counts_zero_in_the_model_s_c() -> None:
    """Scores v2 left it out of the mean, so failing a task raised a model's C (and its rank)."""
    good = _task("coherent", 0.9, 0.7, 0.0)
    failed = Verdict(good.D, None, None, {}, "no behaviour", ["no behaviour"], no_behaviour=True, replicates={"D": good.replicates["D"]})
    both = model_scores(None, verdicts={"a": good, "b": failed})
    assert both.C.value == pytest.approx(0.35) and both.F.value == pytest.approx((0.2 + 0.9) / 2)
    assert both.C.low < both.C.value < both.C.high
    assert both.C.value < model_scores(None, verdicts={"a": good}).C.value


def test_d_is_reported_on_each_cue_stratum_of_the_test_examples() -> None:
    """A probe right only where the spurious cue agreed with the answer reads the cue: its D is 1 on that stratum
    and 0 on the other (D version 3; the point estimates are recomputed on each stratum's rows)."""
    section = probe_section({"a": ("11110000", "00000000", [0, 1, 0, 1, 0, 1, 0, 1], [0, 1, 2, 3, 4, 5, 6, 7])}, n_test_examples=8)
    section = section.model_copy(update={"test_cue_agrees": "11110000"})
    d = decodability(section)
    assert d.D.value == pytest.approx(0.0)  # 4 of 8 right: at chance
    assert d.strata["cue agrees"].value == pytest.approx(1.0) and d.strata["cue disagrees"].value == pytest.approx(0.0)
    assert decodability(section.model_copy(update={"test_cue_agrees": None})).strata == {}
