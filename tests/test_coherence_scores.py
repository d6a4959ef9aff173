"""Coherence C, its components, F = D - C and the verdict, recomputed from hand-made raw numbers."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from fracbench.config import RunConfig
from fracbench.results import (
    SCHEMA_VERSION,
    ModelIdentity,
    Packages,
    Provenance,
    RunResult,
    SplitBehaviour,
    TaskResult,
    Timings,
    Transfer,
)
from fracbench.results.coherence import (
    CircuitConditions,
    CircuitSection,
    ControlCircuit,
    Curve,
    FaithfulnessCurve,
    OODCircuit,
    RegimeCircuit,
    RegimeSection,
    SearchRestart,
    StressSection,
)
from fracbench.scoring import (
    CI_PERCENTILES,
    C_LOW,
    COMPONENT_LOW,
    CUE_RELIANCE_MIN,
    D_HIGH,
    IN_C,
    coherence,
    coherence_components,
    Thresholds,
    recovered,
    regime_reuse_matrix,
    retention,
    smallest_of_drawn,
    specificity_drops,
    verdict,
)
from tests.conftest import probe_section

N = 4  # test prompts
FULL = [4.0, 4.0, 4.0, 4.0]  # behaviour: m(M) = 4
EMPTY = [0.0, 0.0, 0.0, 0.0]  # m(empty) = 0
# Two rows per test prompt, one of each class, so every bootstrap resample keeps chance at 0.5
PERFECT_PROBES = ("11111111", "00000000", [0, 1] * 4, [0, 0, 1, 1, 2, 2, 3, 3])  # d = 1 in every replicate: D = 1 [1, 1]
USELESS_PROBES = ("10101010", "00000000", [0, 1] * 4, [0, 0, 1, 1, 2, 2, 3, 3])  # accuracy at chance: D = 0


def curve(levels, circuit_rows) -> Curve:
    return Curve(levels=levels, model=[FULL] * len(levels), circuit=circuit_rows)


def task(circuit=(3.0, 3.0, 3.0, 3.0), complement=(1.0, 1.0, 1.0, 1.0), ood_full=(4.0, 4.0, -1.0, -1.0), ood_circuit=(2.0,) * 4,
         probes=PERFECT_PROBES, edges=99, slots=9999) -> TaskResult:
    test = SplitBehaviour.from_logit_diffs(FULL, None, 0)
    ood = SplitBehaviour.from_logit_diffs(list(ood_full), "far", 1)
    c = CircuitSection(
        target=0.9, steps=1, penalty=1e-3, seed=0, n_search_examples=2, ablation="mean", node_sites={"s": 100}, kept={"s": [0, 1]}, n_nodes=2,
        n_edges=edges, edge_slots=slots, search_sufficiency=0.9,
        test=CircuitConditions(empty=EMPTY, circuit=list(circuit), complement=list(complement)),
        ood={"ood/far/1": OODCircuit(empty=[0.0] * 4, circuit=list(ood_circuit))},
        # the learned ranking reaches half the model's logit difference with 1 node and all of it with 10; a random one
        # a quarter with 10 and all with 100 (of 100 nodes); a random set of the circuit's size removes a quarter
        curve=FaithfulnessCurve(sizes=[1, 10, 100], learned=[[2.0] * 4, FULL, FULL], random=[[0.0] * 4, [1.0] * 4, FULL],
                                random_complement=[[3.0] * 4]),
    )
    # noise: the circuit keeps all of its accuracy at the first level, loses half of each prompt's margin at the second
    s = StressSection(seed=0, activation_noise=curve([1.0, 2.0], [[3.0] * 4, [1.0, 1.0, -1.0, -1.0]]),
                      dropout=curve([0.5], [[1.0] * 4]), weight_noise=None, distractors=curve([1.0], [[-1.0] * 4]))
    return TaskResult(version="1", n_examples={"train": 10, "test": N, "ood/far/1": 4}, behaviour={"test": test, "ood/far/1": ood},
                      probes=probe_section({"x": probes}, n_test_examples=N), circuits=c, stress=s)


def run(tasks: dict[str, TaskResult], specificity=None, schema_version: str = SCHEMA_VERSION) -> RunResult:
    return RunResult(
        schema_version=schema_version, fracbench_version="0", suite_version="0", created=datetime(2026, 1, 1, tzinfo=timezone.utc),
        model=ModelIdentity(name="m", kind="native", n_params=1, weights_sha256="0" * 64, n_layers=1, d_model=1, n_ctx=8),
        provenance=Provenance(seeds={"examples": 0}, batch_size=1, packages=Packages(python="3", torch="2", numpy="1", pydantic="2",
                                                                                   transformers=None),
                              device="cpu", dtype="float32", command=[], timings=Timings(tasks={}, total=0.0),
                              # made-up task names: a config as a file holds it, not as RunConfig(...) checks one
                              config=RunConfig.model_construct(tasks=tuple(tasks), batch_size=1) if int(schema_version) >= 12 else None),
        tasks=tasks, specificity=specificity,
    )


def test_retention_and_recovery_are_clipped_normalizations() -> None:
    assert retention(0.75, 1.0) == 0.5 and retention(0.4, 1.0) == 0.0 and retention(1.0, 0.5) == 0.0
    assert recovered(3.0, 0.0, 4.0) == 0.75 and recovered(5.0, 0.0, 4.0) == 1.0 and math.isnan(recovered(0.3, 0.0, 0.2))


def test_each_component_follows_its_definition() -> None:
    result = run({"a": task(), "b": task()}, specificity={"a": {"b": [3.0] * 4}, "b": {"a": [4.0] * 4}})
    parts = coherence(result, "a").components
    # sufficiency 3/4, necessity 1 - 1/4: faithfulness = sqrt(0.75 * 0.75)
    assert parts["faithfulness"] == pytest.approx(0.75)
    # areas over log size (normalized): learned (0.75 + 1) / 2, random (0.125 + 0.625) / 2; compactness fills
    # (0.875 - 0.375) of the random ranking's room 1 - 0.375
    assert parts["compactness"] == pytest.approx(0.8)
    assert parts["cpr"] == pytest.approx(0.875) and parts["cmd"] == pytest.approx(0.125)
    assert parts["necessity_margin"] == pytest.approx(0.75 - 0.25)
    # a's own drop (necessity) 0.75, b's drop under a's circuit 1 - 3/4 = 0.25: specificity 0.5
    assert parts["specificity"] == pytest.approx(0.5)
    # the full model keeps all its accuracy under every perturbation, so each kind's share is the circuit's mean retention:
    # circuit clean accuracy 1; noise: retention 1 then 0; dropout: 1; distractors: 0
    assert parts["stress"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    # OOD: the model keeps behaviour (m(M) 1.5 over m(empty) 0) and the circuit's 2.0 overshoots it by a third
    assert parts["ood"] == pytest.approx(1 - (2.0 / 1.5 - 1))
    # the model's OOD accuracy 0.5 keeps none of its margin over chance: that is generalization G's, not C's
    assert verdict(result, "a").G.value == 0.0
    assert coherence(result, "b").components["specificity"] == pytest.approx(0.75)  # a keeps all of its behaviour under b's circuit


def test_the_specificity_matrix_holds_each_circuit_s_drop_on_every_task_and_is_reported() -> None:
    from fracbench.report.coherence import coherence_table

    result = run({"a": task(), "b": task()}, specificity={"a": {"b": [3.0] * 4}, "b": {"a": [4.0] * 4}})
    # the diagonal is each task's own drop (complement 1 of 4 -> 0.75); a's circuit takes 1/4 of b's; b's none of a's
    assert specificity_drops(result) == {"a": {"a": 0.75, "b": 0.25}, "b": {"b": 0.75, "a": 0.0}}
    table = coherence_table(result)
    assert "specificity: share of each task's logit difference removed" in table and table.rstrip().endswith("0.00     0.75")
    assert "specificity:" not in coherence_table(run({"a": task()}))


def test_stress_is_the_share_of_the_full_model_s_robustness_the_circuit_keeps() -> None:
    half = [1.0, 1.0, 1.0, -1.0]  # accuracy 0.75: half the margin over chance
    t = task()
    # the circuit is more robust than the model (area 1.5 against 1.0): no better an account of it than one at 0.5
    t.stress.activation_noise = Curve(levels=[1.0, 2.0], model=[half, half], circuit=[half, [3.0] * 4])
    t.stress.dropout = Curve(levels=[0.5], model=[FULL], circuit=[half])  # keeps half of what the model keeps
    t.stress.distractors = Curve(levels=[1.0], model=[[-1.0] * 4], circuit=[[-1.0] * 4])  # the model keeps nothing: no evidence
    parts = coherence(run({"a": t}), "a").components
    assert parts["stress"] == pytest.approx((0.5 + 0.5) / 2)


def test_c_is_the_geometric_mean_of_the_components() -> None:
    result = run({"a": task(ood_full=(4.0,) * 4)})
    coh = coherence(result, "a")
    parts = [v for k, v in coh.components.items() if k in IN_C and v is not None]
    assert coh.components["specificity"] is None  # one task: nothing to be specific against
    assert "specificity" not in IN_C  # reported, not in C (docs/metrics.md)
    assert coh.C.value == pytest.approx(math.prod(parts) ** (1 / len(parts)))
    assert coh.C.low <= coh.C.value <= coh.C.high


def test_high_d_and_a_c_interval_below_the_threshold_is_fractured_naming_the_failing_components() -> None:
    v = verdict(run({"a": task(circuit=(0.4,) * 4, complement=(3.6,) * 4)}), "a")
    assert v.D.low >= D_HIGH and v.C.high < C_LOW
    assert v.verdict == "FRACTURED"
    assert v.reasons == ["faithfulness 0.10"] and all(float(r.split()[-1]) < COMPONENT_LOW for r in v.reasons)
    assert v.F.value == pytest.approx(v.D.value - v.C.value)


def test_a_c_interval_across_the_threshold_is_inconclusive() -> None:
    """Scores v2 decided C on its point: a C of 0.48 [0.30, 0.60] was FRACTURED, 0.52 [0.40, 0.70] coherent. Here a control
    search reaches 0.6 of the circuit's share (selectivity 0.2) and C sits at the threshold."""
    v = verdict(run({"a": with_control(task(), [2.4, -2.4, 2.4, -2.4])}), "a")
    assert v.C.low < C_LOW <= v.C.high, v.C
    assert v.verdict == "inconclusive" and v.reasons[0].startswith(f"C {v.C.value:.2f}, 95% interval")


def test_a_model_that_does_not_decode_is_not_flagged() -> None:
    v = verdict(run({"a": task(probes=USELESS_PROBES)}), "a")
    assert v.verdict == "does not decode" and v.D.value < D_HIGH


def test_a_d_whose_interval_reaches_across_the_threshold_is_inconclusive() -> None:
    # 3 of 4 rows right at chance 0.5: d = 0.5 exactly, but a resample of 4 examples often reads less
    v = verdict(run({"a": task(probes=("1110", "0000", [0, 1, 0, 1], [0, 1, 2, 3]))}), "a")
    assert v.D.value == pytest.approx(D_HIGH) and v.D.low < D_HIGH <= v.D.high
    assert v.verdict == "inconclusive" and "across 0.5" in v.reasons[0]


def test_scores_version_6_reads_an_interval_that_ends_on_a_threshold_as_across_it() -> None:
    """Version 5 (schema 11-12) read D.low >= D_high as "decodes" and C.low >= C_low as "coherent"; version 6 (schema 13)
    needs the interval to exclude the threshold (docs/metrics.md, "Scores version 6"). One latent decoded perfectly and
    one not at all give D 0.50 [0.50, 0.50]: compiled quote_close's case."""
    t = task().model_copy(update={"probes": probe_section({"x": PERFECT_PROBES, "y": USELESS_PROBES}, n_test_examples=N)})
    new, old = verdict(run({"a": t}), "a"), verdict(run({"a": t}, schema_version="12"), "a")
    assert new.D == old.D and (new.D.low, new.D.high) == (D_HIGH, D_HIGH)
    assert new.verdict == "inconclusive" and new.reasons == ["D 0.50, 95% interval [0.50, 0.50]: reaches 0.5"]
    assert old.verdict == "coherent"
    at_c_low = Thresholds(C_low=verdict(run({"a": task()}), "a").C.low)  # the threshold on C's own lower end
    assert verdict(run({"a": task()}), "a", thresholds=at_c_low).verdict == "inconclusive"
    assert verdict(run({"a": task()}, schema_version="12"), "a", thresholds=at_c_low).verdict == "coherent"


def test_no_behaviour_to_explain_means_no_coherence() -> None:
    flat = task(circuit=(0.1,) * 4, complement=(0.1,) * 4)
    flat = flat.model_copy(update={"behaviour": {**flat.behaviour, "test": SplitBehaviour.from_logit_diffs([0.2] * 4, None, 0)}})
    coh = coherence(run({"a": flat}), "a")
    assert coh.C is None and all(v is None for v in coh.components.values())


def test_scoring_and_the_circuit_search_agree_on_when_there_is_no_behaviour() -> None:
    """The search skips models below MIN_EFFECT and scoring leaves their C undefined: one threshold, two readers."""
    from fracbench import scoring
    from fracbench.circuits import faithfulness

    assert faithfulness.MIN_EFFECT == scoring.MIN_EFFECT


def with_cue_splits(t: TaskResult, agree: list[float], flip: list[float]) -> TaskResult:
    behaviour = {**t.behaviour, "cue_agree": SplitBehaviour.from_logit_diffs(agree, None, 0),
                 "cue_flip": SplitBehaviour.from_logit_diffs(flip, None, 0)}
    return t.model_copy(update={"behaviour": behaviour, "n_examples": {**t.n_examples, "cue_agree": len(agree), "cue_flip": len(flip)}})


def test_a_model_that_follows_its_cue_is_named_for_it_whatever_its_verdict() -> None:
    """Cue reliance is accuracy with the cue agreeing minus flipped, decided on its interval; a reason beside D and C."""
    follows = with_cue_splits(task(probes=USELESS_PROBES), agree=[1.0] * 40, flip=[-1.0] * 30 + [1.0] * 10)
    v = verdict(run({"a": follows}), "a")
    assert v.cue_reliance.value == pytest.approx(0.75) and v.cue_reliance.low > CUE_RELIANCE_MIN and v.relies_on_cue
    assert v.verdict == "does not decode" and v.reasons[0].startswith("relies on its cue: accuracy +0.75")
    ignores = with_cue_splits(task(), agree=[1.0] * 20 + [-1.0] * 20, flip=[1.0] * 19 + [-1.0] * 21)
    v = verdict(run({"a": ignores}), "a")
    assert v.cue_reliance.low < 0 < v.cue_reliance.high and not v.relies_on_cue
    assert not any(r.startswith("relies") for r in v.reasons)
    assert verdict(run({"a": task()}), "a").cue_reliance is None  # no cue splits: not measured


def test_decoding_without_behaviour_for_a_circuit_is_its_own_verdict() -> None:
    flat = task(circuit=(0.1,) * 4, complement=(0.1,) * 4)
    flat = flat.model_copy(update={"behaviour": {**flat.behaviour, "test": SplitBehaviour.from_logit_diffs([0.2] * 4, None, 0)}})
    v = verdict(run({"a": flat}), "a")
    assert v.verdict == "no behaviour" and v.no_behaviour and v.C is None


def test_a_circuit_that_beats_the_model_is_no_more_faithful_than_one_that_falls_short() -> None:
    """Scores v2 clipped sufficiency at 1: a circuit at 150% of the model's logit difference scored as perfect."""
    over, under = (coherence(run({"a": task(circuit=(c,) * 4, complement=(0.0,) * 4)}), "a").components["faithfulness"] for c in (6.0, 2.0))
    assert over == pytest.approx(under) == pytest.approx(math.sqrt(0.5))


def test_ood_splits_without_behaviour_or_decoding_are_left_out_of_c_and_named() -> None:
    """Scores v2 scored "the model fails OOD" as disorganization (and jumped to 0 at MIN_EFFECT)."""
    no_behaviour = run({"a": task(ood_full=(0.2,) * 4)})
    assert coherence(no_behaviour, "a").components["ood"] is None
    v = verdict(no_behaviour, "a")
    assert "no behaviour OOD on 1 of 1 splits" in v.reasons and v.G.value == 1.0  # every choice right, by a margin too small to explain
    t = task()
    lost = {name: latent.model_copy(update={"transfer": {"ood/far/1": Transfer(n=4, accuracy=0.5, n_unseen=0, correct="1010", unseen="0000")}})
            for name, latent in t.probes.latents.items()}
    t = t.model_copy(update={"probes": t.probes.model_copy(update={"latents": lost})})
    assert coherence(run({"a": t}), "a").components["ood"] is None
    assert "does not decode OOD on 1 of 1 splits" in verdict(run({"a": t}), "a").reasons


def test_compactness_counts_nodes_against_a_random_ranking_so_zero_weights_earn_nothing() -> None:
    """Scores v2 measured compactness in nonzero weights: a 25% weight density was worth +0.11 for the same nodes."""
    dense, sparse = (coherence(run({"a": task(edges=edges)}), "a").components["compactness"] for edges in (9000, 99))
    assert dense == sparse == pytest.approx(0.8)
    t = task()
    t.circuits.curve.learned = list(t.circuits.curve.random)  # a ranking no better than random: nothing to credit
    assert coherence(run({"a": t}), "a").components["compactness"] == pytest.approx(0.0)


def test_a_bootstrap_replicate_where_the_stressed_model_keeps_nothing_still_scores() -> None:
    """The shortcut zoo model's first scores-v3 run stopped here: a resample in which the perturbed full model kept none
    of its margin gave every stress kind NaN, and C's interval NaN."""
    t = task()
    mostly = [1.0, 1.0, 1.0, -1.0]  # accuracy 0.75 at the point; a resample of two right and two wrong keeps nothing
    t.stress.activation_noise = Curve(levels=[1.0], model=[mostly], circuit=[mostly])
    t.stress.dropout = t.stress.distractors = None
    v = verdict(run({"a": t}), "a")
    assert v.components["stress"] == pytest.approx(1.0) and math.isfinite(v.C.low) and math.isfinite(v.C.high)


def with_restarts(t: TaskResult, circuits: list[list[float]], reported: int = 0) -> TaskResult:
    """``t`` with search restarts whose circuits alone give ``circuits`` (the reported one: t's own)."""
    c = t.circuits
    assert circuits[reported] == c.test.circuit
    restarts = [SearchRestart(kept=c.kept if i == reported else {"s": [i, 50 + i]}, n_nodes=2, search_sufficiency=0.9, circuit=row,
                              complement=c.test.complement, learned=c.curve.learned) for i, row in enumerate(circuits)]
    return t.model_copy(update={"circuits": c.model_copy(update={"restarts": restarts, "reported": reported})})


def test_c_s_interval_holds_the_search_restarts_spread() -> None:
    """Scores v2 searched once: two seeds of the same search gave dense copy_name 1,583 and 2,415 nodes, and C's interval
    (prompts resampled, one circuit) held none of that. Scores version 4 (schema 10 files) draws one restart per replicate."""
    same, spread = (coherence_components(run({"a": with_restarts(task(), rows)}, schema_version="10"), "a")["faithfulness"]
                    for rows in ([[3.0] * 4] * 5, [[3.0] * 4, [2.0] * 4, [4.0] * 4, [1.0] * 4, [3.5] * 4]))
    assert spread[0] == same[0] == pytest.approx(0.75)  # the point estimate is the reported circuit's
    assert np.ptp(same[1:]) == pytest.approx(0.0)  # every prompt alike and every restart alike: nothing varies
    low, high = np.percentile(spread[1:], CI_PERCENTILES)
    # sufficiency 1/4 (restart 3) gives faithfulness sqrt(1/4 x 3/4); 4/4 (restart 2) sqrt(3/4)
    assert low == pytest.approx(math.sqrt(0.25 * 0.75)) and high == pytest.approx(math.sqrt(0.75))
    assert coherence(run({"a": task()}), "a").C == coherence(run({"a": with_restarts(task(), [[3.0] * 4] * 5)}), "a").C


def test_each_replicate_of_scores_version_5_uses_the_smallest_of_r_restarts_drawn_with_replacement() -> None:
    """The bootstrap of the smallest-of-R rule: with one small restart in five, a replicate misses it with probability
    (4/5)^5 = 0.33 and then uses the smallest of those it drew; ties go to the lowest index."""
    picks = smallest_of_drawn([40, 9, 40, 30, 40], n_bootstrap=20_000, seed=0)
    assert np.mean(picks == 1) == pytest.approx(1 - 0.8**5, abs=0.01)
    assert np.mean(picks == 3) == pytest.approx(0.8**5 - 0.6**5, abs=0.01)  # 1 missed, 3 drawn
    assert np.mean(np.isin(picks, [0, 2, 4])) == pytest.approx(0.6**5, abs=0.01)  # only size-40 restarts drawn
    assert np.mean(smallest_of_drawn([5, 5], n_bootstrap=20_000, seed=0) == 0) == pytest.approx(0.75, abs=0.01)  # ties: lowest index
    assert (smallest_of_drawn([7, 3, 9], 100, seed=4) == smallest_of_drawn([7, 3, 9], 100, seed=4)).all()  # seeded


def test_a_schema_11_file_must_report_the_first_restart_of_the_fewest_nodes() -> None:
    t = with_restarts(task(), [[3.0] * 4, [2.0] * 4, [3.5] * 4])  # every restart keeps 2 nodes: the first is reported
    run({"a": t})
    smaller = t.circuits.restarts[1].model_copy(update={"kept": {"s": [7]}, "n_nodes": 1})
    shrunk = t.model_copy(update={"circuits": t.circuits.model_copy(update={"restarts": [t.circuits.restarts[0], smaller,
                                                                                           t.circuits.restarts[2]]})})
    with pytest.raises(ValueError, match=r"circuits.reported is restart 0 \(2 nodes\), but schema_version 11 and later report the first "
                                         r"restart of the fewest nodes: 1 \(1 nodes\)"):
        run({"a": shrunk})
    run({"a": shrunk}, schema_version="10")  # schema 10 reported the median restart: not checked against this rule


def test_restart_agreement_is_the_mean_pairwise_node_jaccard() -> None:
    t = with_restarts(task(), [[3.0] * 4] * 3)  # {0, 1}, {1, 51}, {2, 52}: Jaccard 1/3, 0, 0
    assert coherence(run({"a": t}), "a").components["restart_jaccard"] == pytest.approx(1 / 9)
    assert coherence(run({"a": task()}), "a").components["restart_jaccard"] is None


def test_the_reported_circuit_must_be_one_of_the_restarts() -> None:
    t = with_restarts(task(), [[3.0] * 4, [2.0] * 4])
    CircuitSection.model_validate(t.circuits.model_dump())
    with pytest.raises(ValueError, match=r"restarts\[1\] \(reported\) must be the circuit"):
        CircuitSection.model_validate({**t.circuits.model_dump(), "reported": 1})


# -- scores version 4: circuit selectivity and reuse across regimes -------------------------------------------------


def with_control(t: TaskResult, control_circuit: list[float], flip=(False, True, False, True)) -> TaskResult:
    control = ControlCircuit(flip=list(flip), circuit=control_circuit, learned=[EMPTY] * len(t.circuits.curve.sizes))
    return t.model_copy(update={"circuits": CircuitSection.model_validate({**t.circuits.model_dump(), "control": control.model_dump()})})


@pytest.mark.parametrize(("control_share", "selectivity"), [(0.0, 1.0), (0.375, 0.5), (0.75, 0.0), (-0.5, 1.0)])
def test_circuit_selectivity_is_the_share_of_the_circuit_s_effect_no_control_mask_of_its_size_produces(control_share, selectivity) -> None:
    flip = (False, True, False, True)
    # the control ranking's circuit gives each prompt's *control* logit difference 4 x control_share (the task's times -1 where flipped)
    control = [4.0 * control_share * (-1.0 if f else 1.0) for f in flip]
    parts = coherence(run({"a": with_control(task(), control, flip)}), "a").components
    assert parts["control_share"] == pytest.approx(control_share)
    assert parts["selectivity"] == pytest.approx(selectivity)  # the circuit's own share is 3/4


def with_regimes(t: TaskResult, short: list[bool], regimes: dict[str, tuple[list[float], list[float]]],
                 random: list[float] = (0.0,) * 4, pool_random: list[float] = (0.0,) * 2) -> TaskResult:
    """``regimes``: name -> (per test prompt, per pooled OOD prompt) logit differences of its circuit alone; ``id`` is the
    reported circuit's own test numbers; the pool is the first two prompts of the OOD split."""
    c = t.circuits
    circuits = {"id": RegimeCircuit(kept=c.kept, n_nodes=c.n_nodes, search_sufficiency=0.9, test=c.test.circuit,
                                    ood=c.ood["ood/far/1"].circuit[:2], random_test=[list(random)], random_ood=[list(pool_random)])}
    for name, (test, ood) in regimes.items():
        circuits[name] = RegimeCircuit(kept={"s": [5]}, n_nodes=1, search_sufficiency=0.9, test=test, ood=ood,
                                       random_test=[list(random)], random_ood=[list(pool_random)])
    section = RegimeSection(short_chars=32, short=short, ood_prompts=[("ood/far/1", 0), ("ood/far/1", 1)], circuits=circuits)
    return t.model_copy(update={"circuits": CircuitSection.model_validate({**t.circuits.model_dump(), "regimes": section.model_dump()})})


@pytest.fixture
def few_prompts_per_regime(monkeypatch: pytest.MonkeyPatch) -> None:
    import fracbench.scoring

    monkeypatch.setattr(fracbench.scoring, "MIN_REGIME_PROMPTS", 2)  # the hand-made tasks have 4 test prompts


def regime_task(short_on_long: float, long_on_short: float, ood_on_id: float = 3.0, id_on_ood: float = 4.0) -> TaskResult:
    """Two short and two long test prompts (m(M) 4, m(empty) 0 everywhere); each length regime's own circuit recovers 3
    of 4 on its own prompts and the given amount on the other regime's; the pooled OOD prompts (m(M) 4, 4)."""
    t = task(ood_full=(4.0,) * 4, ood_circuit=(id_on_ood,) * 4)
    short = [True, True, False, False]
    return with_regimes(t, short, {"short": ([3.0, 3.0, short_on_long, short_on_long], [4.0, 4.0]),
                                   "long": ([long_on_short, long_on_short, 3.0, 3.0], [4.0, 4.0]),
                                   "ood": ([ood_on_id] * 4, [4.0, 4.0])})


def test_reuse_is_the_share_of_a_regime_s_own_circuit_margin_over_random_sets_another_regime_s_circuit_keeps(few_prompts_per_regime) -> None:
    parts = coherence(run({"a": regime_task(short_on_long=3.0, long_on_short=1.5)}), "a").components
    # short -> long: 3 of 3 (own 3 / 4, random 0): 1; long -> short: 1.5 of 3: 0.5; the axis averages its directions
    assert parts["reuse_length"] == pytest.approx(0.75)
    # ood -> id: 3 of the reported circuit's 3; id -> ood: 4 of the ood circuit's 4
    assert parts["reuse_ood"] == pytest.approx(1.0)
    assert parts["reuse"] == pytest.approx(0.75)  # the minimum over the axes: a fractured axis is not averaged away
    assert parts["jaccard_length"] == 1.0 and parts["jaccard_ood"] == 0.0  # node {5} in both length circuits; not in id's


def test_a_model_whose_regimes_use_other_machinery_is_fractured_for_reuse(few_prompts_per_regime) -> None:
    result = run({"a": with_control(regime_task(short_on_long=0.0, long_on_short=-2.0), EMPTY)})
    v = verdict(result, "a")
    assert v.components["reuse_length"] == 0.0 and v.components["reuse"] == 0.0
    assert v.verdict == "FRACTURED" and v.reasons[0].startswith("reuse 0.00")


def test_scores_version_6_reads_a_reuse_direction_only_where_the_own_circuit_s_margin_over_random_is_shown(
        few_prompts_per_regime) -> None:
    """The long regime's own circuit recovers all of one long prompt and -1/2 of the other: o - r is 0.25 at the point
    but its interval reaches below 0, so short -> long is noise. Version 5 read it (0 of 0.25: reuse 0, the axis 0.5);
    version 6 leaves it undefined, and the length axis is long -> short alone."""
    t = task(ood_full=(4.0,) * 4, ood_circuit=(4.0,) * 4)
    t = with_regimes(t, [True, True, False, False], {"short": ([3.0, 3.0, 0.0, 0.0], [4.0, 4.0]),
                                                     "long": ([3.0, 3.0, 4.0, -2.0], [4.0, 4.0]), "ood": ([3.0] * 4, [4.0, 4.0])})
    new, old = run({"a": t}), run({"a": t}, schema_version="12")
    assert coherence(old, "a").components["reuse_length"] == pytest.approx(0.5)
    assert coherence(new, "a").components["reuse_length"] == pytest.approx(1.0)
    (new_matrix, names), (old_matrix, _) = regime_reuse_matrix(new, "a"), regime_reuse_matrix(old, "a")
    short, long = names.index("short"), names.index("long")
    assert np.isnan(new_matrix[short, long]) and old_matrix[short, long] == 0.0 and new_matrix[long, short] == 1.0


def test_a_regime_with_too_few_test_prompts_or_no_circuit_leaves_its_axis_out() -> None:
    t = regime_task(short_on_long=0.0, long_on_short=0.0)  # 2 prompts per length regime: below MIN_REGIME_PROMPTS
    parts = coherence(run({"a": t}), "a").components
    assert parts["reuse_length"] is None and parts["reuse"] == pytest.approx(parts["reuse_ood"])


def test_the_regime_section_must_carry_the_reported_circuit_as_id() -> None:
    t = regime_task(short_on_long=3.0, long_on_short=3.0)
    data = t.circuits.model_dump()
    data["regimes"]["circuits"]["id"]["test"] = [0.0] * 4
    with pytest.raises(ValueError, match=r"regimes.circuits\['id'\] must be the reported circuit"):
        CircuitSection.model_validate(data)
