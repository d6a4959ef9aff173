"""The results schema: exact round trips, and every kind of bad document refused with its field named."""

from __future__ import annotations

import json
import lzma
import re
import math
import os
import struct
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from fracbench.results.coherence import CircuitConditions, CircuitSection, OODCircuit
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
    XZ_MAGIC,
    check_writable,
    encode_results,
    read_results,
    recorded,
    results_json,
    write_results,
)

# floats whose decimal forms are awkward: they must come back bit for bit
AWKWARD = [0.1, 1 / 3, -2.5e-300, 123456.78901234567, 5e-324, -1.7976931348623157e308, 2.0**-30]


def make_circuit(n_test: int, n_ood: int) -> CircuitSection:
    return CircuitSection(
        target=0.9, steps=10, penalty=1e-3, seed=0, n_search_examples=4, ablation="mean", node_sites={"blocks.0.mlp.hook_post": 8, "blocks.0.hook_mlp_out": 4},
        kept={"blocks.0.mlp.hook_post": [1, 5]}, n_nodes=2, n_edges=3, edge_slots=32, search_sufficiency=0.93,
        test=CircuitConditions(empty=[0.0] * n_test, circuit=[0.5] * n_test, complement=[-0.1] * n_test),
        ood={"ood/long_body/2": OODCircuit(empty=[0.0] * n_ood, circuit=[0.25] * n_ood)},
    )


def make_result() -> RunResult:
    test = SplitBehaviour.from_logit_diffs(AWKWARD, None, 0)
    ood = SplitBehaviour.from_logit_diffs([-0.25, 0.5, math.pi], "long_body", 2)
    return RunResult(
        schema_version=SCHEMA_VERSION,
        fracbench_version="0.1.0",
        suite_version="0.1",
        created=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
        model=ModelIdentity(name="zoo:dense", kind="native", n_params=10, weights_sha256="ab" * 32, n_layers=1, d_model=8, n_ctx=16),
        provenance=Provenance(
            seeds={"examples": 0},
            batch_size=4,
            packages=Packages(python="3.11.7", torch="2.3.0", numpy="1.26.0", pydantic="2.7.0", transformers=None),
            device="cpu",
            dtype="float32",
            command=["fracbench", "run"],
            timings=Timings(tasks={"quote_close": 0.5}, total=1.25),
            config=RunConfig(tasks="quote_close", seed=0, batch_size=4),
        ),
        tasks={
            "quote_close": TaskResult(
                version="1",
                n_examples={"train": 4, "test": test.n, "ood/long_body/2": ood.n},
                behaviour={"test": test, "ood/long_body/2": ood},
                circuits=make_circuit(len(AWKWARD), ood.n),
            )
        },
    )


def edited(change) -> dict:
    """The valid result as plain data, after ``change(data)`` mutates it."""
    data = make_result().model_dump(mode="json")
    change(data)
    if data.get("schema_version", "").isdigit() and int(data["schema_version"]) < 12:
        data["provenance"].pop("config", None)  # relabelled as an older file: it had no config
    return data


def test_results_file_round_trips_exactly(tmp_path: Path) -> None:
    result = make_result()
    path = write_results(result, tmp_path / "r.json")
    back = read_results(path)
    assert back == result
    got = back.tasks["quote_close"].behaviour["test"].logit_diffs
    assert [struct.pack("<d", x) for x in got] == [struct.pack("<d", x) for x in AWKWARD]
    assert path.read_text() == back.model_dump_json(indent=2) + "\n"  # writing what was read changes nothing
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def test_a_compressed_results_file_round_trips_and_is_read_by_its_content_not_its_name(tmp_path: Path) -> None:
    result = make_result()
    path = write_results(result, tmp_path / "r.json.xz")
    assert path.read_bytes().startswith(XZ_MAGIC) and read_results(path) == result
    renamed = path.rename(tmp_path / "renamed.json")
    assert read_results(renamed) == result
    assert encode_results(result, compressed=False) == write_results(result, tmp_path / "plain.json").read_bytes()


@pytest.mark.parametrize(("damage", "message"), [
    (lambda raw: raw[: len(raw) // 2], "is a truncated xz file"),
    (lambda raw: raw[:12] + bytes(len(raw) - 12), "is an xz file that cannot be decompressed"),
])
def test_a_damaged_compressed_file_is_refused_saying_so(tmp_path: Path, damage, message) -> None:
    path = tmp_path / "r.json.xz"
    path.write_bytes(damage(encode_results(make_result())))
    with pytest.raises(ValueError, match=re.escape(f"{path} {message}")):
        read_results(path)


def test_a_compressed_file_that_expands_past_the_limit_is_refused_before_it_is_read_whole() -> None:
    bomb = lzma.compress(b" " * 10_000_000, format=lzma.FORMAT_XZ)
    assert len(bomb) < 10_000
    with pytest.raises(ValueError, match="expands to more than 1,000,000 bytes"):
        results_json(bomb, limit=1_000_000)


def test_recorded_numbers_keep_three_significant_digits_their_sign_and_zero() -> None:
    assert recorded([5.6238, -0.0041234, 0.0, -0.0, 123.456, 1e-9]) == [5.62, -0.00412, 0.0, -0.0, 123.0, 1e-9]
    values = [x / 7 for x in range(-300, 300)]
    kept = recorded(values)
    assert recorded(kept) == kept  # recording twice changes nothing
    assert all(abs(k - v) <= 0.005 * abs(v) for k, v in zip(kept, values))  # relative error at most half a unit in the third digit
    assert [k > 0 for k in kept] == [v > 0 for v in values]  # so no accuracy moves


def test_aggregates_are_computed_from_the_raw_numbers() -> None:
    b = SplitBehaviour.from_logit_diffs([1.0, -2.0, 0.0, 3.0], None, 0)
    assert b.accuracy == 0.5  # a tie (0.0) counts as wrong
    assert b.mean_logit_diff == 0.5


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused_with_their_path(bad: float) -> None:
    def raw(d):
        d["tasks"]["quote_close"]["behaviour"]["test"]["logit_diffs"][2] = bad

    with pytest.raises(ValidationError, match=r"tasks\.quote_close\.behaviour\.test\.logit_diffs\.2"):
        RunResult.model_validate(edited(raw))

    def section(d):
        d["tasks"]["quote_close"]["circuits"]["test"]["circuit"][1] = bad

    with pytest.raises(ValidationError, match=r"tasks\.quote_close\.circuits\.test\.circuit\.1"):
        RunResult.model_validate(edited(section))

    def timing(d):
        d["provenance"]["timings"]["total"] = bad

    with pytest.raises(ValidationError, match=r"provenance\.timings\.total"):
        RunResult.model_validate(edited(timing))


def test_accuracy_outside_0_1_is_refused() -> None:
    def change(d):
        d["tasks"]["quote_close"]["behaviour"]["test"]["accuracy"] = 1.5

    with pytest.raises(ValidationError, match=r"behaviour\.test\.accuracy\n.*less than or equal to 1"):
        RunResult.model_validate(edited(change))


@pytest.mark.parametrize("field", ["accuracy", "mean_logit_diff"])
def test_an_aggregate_that_disagrees_with_the_raw_numbers_is_refused(field: str) -> None:
    def change(d):
        d["tasks"]["quote_close"]["behaviour"]["ood/long_body/2"][field] += 0.01

    with pytest.raises(ValidationError) as info:
        RunResult.model_validate(edited(change))
    message = str(info.value)
    assert "tasks.quote_close.behaviour.ood/long_body/2" in message  # names the task and split
    assert f"{field} is" in message and "raw logit_diffs give" in message


def test_a_count_that_disagrees_with_the_raw_numbers_is_refused() -> None:
    def change(d):
        d["tasks"]["quote_close"]["behaviour"]["test"]["n"] += 1

    with pytest.raises(ValidationError, match="n is 8 but there are 7 logit_diffs"):
        RunResult.model_validate(edited(change))


def test_a_split_name_that_disagrees_with_its_axis_is_refused() -> None:
    def change(d):
        d["tasks"]["quote_close"]["behaviour"]["ood/long_body/2"]["level"] = 3

    with pytest.raises(ValidationError, match="does not match its ood_axis 'long_body' and level 3"):
        RunResult.model_validate(edited(change))


@pytest.mark.parametrize(
    "where, path",
    [
        (lambda d: d, "surprise"),
        (lambda d: d["model"], r"model\.surprise"),
        (lambda d: d["tasks"]["quote_close"]["behaviour"]["test"], r"behaviour\.test\.surprise"),
    ],
)
def test_an_unknown_field_is_refused_anywhere(where, path: str) -> None:
    def change(d):
        where(d)["surprise"] = 1

    with pytest.raises(ValidationError, match=rf"{path}\n\s+Extra inputs are not permitted"):
        RunResult.model_validate(edited(change))


def test_an_unknown_schema_version_is_refused_saying_which_are_read(tmp_path: Path) -> None:
    path = tmp_path / "future.json"
    path.write_text(json.dumps(edited(lambda d: d.update(schema_version="99"))))
    with pytest.raises(ValueError, match=r"schema_version '99' is not one this fracbench reads \(it reads schema_version 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13\)"):
        read_results(path)
    with pytest.raises(ValidationError, match="schema_version"):
        RunResult.model_validate(edited(lambda d: d.update(schema_version="14")))


def test_version_12_records_the_run_s_configuration_which_must_describe_the_file() -> None:
    assert RunResult.model_validate(edited(lambda d: None)).provenance.config == RunConfig(tasks="quote_close", seed=0, batch_size=4)
    with pytest.raises(ValidationError, match="schema_version 13 records the run's configuration, but provenance.config is missing"):
        RunResult.model_validate(edited(lambda d: d["provenance"].pop("config")))
    with pytest.raises(ValidationError, match="schema_version 11 has no provenance.config"):
        data = edited(lambda d: None)
        data["schema_version"] = "11"
        RunResult.model_validate(data)
    with pytest.raises(ValidationError, match="provenance.config.tasks is quote_close, copy_name, but the file's tasks are quote_close"):
        RunResult.model_validate(edited(lambda d: d["provenance"]["config"].update(tasks=["quote_close", "copy_name"])))
    with pytest.raises(ValidationError, match="provenance.config has seed 3 and batch_size 4, but provenance has seeds.examples 0"):
        RunResult.model_validate(edited(lambda d: d["provenance"]["config"].update(seed=3)))


def older(data: dict, version: str) -> dict:
    """``data`` as a file of an older schema would hold it: BOS pooled into the means, no stage timings, no config."""
    for t in data["tasks"].values():
        if t.get("circuits"):
            t["circuits"]["ablation"] = "mean_with_bos"
    data["provenance"]["timings"].update(stages={}, specificity=None)
    data["provenance"].pop("config", None)
    data["schema_version"] = version
    return data


@pytest.mark.parametrize("kind", ["mean", "positional_mean"])
def test_version_8_records_the_ablation_and_older_files_read_as_bos_pooled(kind: str) -> None:
    result = RunResult.model_validate(edited(lambda d: d["tasks"]["quote_close"]["circuits"].update(ablation=kind)))
    assert result.tasks["quote_close"].circuits.ablation == kind
    old = edited(lambda d: older(d, "7"))
    del old["tasks"]["quote_close"]["circuits"]["ablation"]
    assert RunResult.model_validate(old).tasks["quote_close"].circuits.ablation == "mean_with_bos"
    with pytest.raises(ValidationError, match="circuits.ablation is 'mean', but schema_version 7 files averaged BOS"):
        RunResult.model_validate(edited(lambda d: d.update(schema_version="7")))
    with pytest.raises(ValidationError, match="schema_version 8 files record 'mean' or 'positional_mean'"):
        RunResult.model_validate(edited(lambda d: d["tasks"]["quote_close"]["circuits"].update(ablation="mean_with_bos")))
    with pytest.raises(ValidationError, match="ablation"):
        RunResult.model_validate(edited(lambda d: d["tasks"]["quote_close"]["circuits"].update(ablation="resample")))


def test_stage_timings_round_trip_in_version_8_and_are_refused_before(tmp_path: Path) -> None:
    stages = {"quote_close": {"behaviour": 0.25, "circuit_search": 0.5}}
    result = RunResult.model_validate(edited(lambda d: d["provenance"]["timings"].update(stages=stages, specificity=0.125)))
    assert read_results(write_results(result, tmp_path / "r.json")) == result
    with pytest.raises(ValidationError, match="schema_version 7 has no stage timings"):
        RunResult.model_validate(edited(lambda d: (older(d, "7"), d["provenance"]["timings"].update(stages=stages))))


LM_EVAL = {"lm_eval_version": "0.4.13", "model_args": "pretrained=/m,dtype=float32", "n": 3, "seed": 0,
           "results": {"fracbench_quote_close_test": {"acc,none": 0.5, "acc_stderr,none": None, "alias": "test"}},
           "versions": {"fracbench_quote_close_test": 1}, "n_samples": {"fracbench_quote_close_test": {"original": 3, "effective": 3}}}


def test_lm_eval_s_results_round_trip_in_version_5_and_are_refused_before(tmp_path: Path) -> None:
    result = RunResult.model_validate(edited(lambda d: d.update(lm_eval=LM_EVAL)))
    assert read_results(write_results(result, tmp_path / "r.json")) == result
    with pytest.raises(ValidationError, match="schema_version 4 has no lm_eval section"):
        RunResult.model_validate(edited(lambda d: d.update(lm_eval=LM_EVAL, schema_version="4")))


def test_reading_an_invalid_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(edited(lambda d: d["model"].update(n_params=-1))))
    with pytest.raises(ValueError, match=r"bad\.json is not a valid fracbench results file(.|\n)*model\.n_params"):
        read_results(path)


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_results(make_result(), tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_directory_is_refused_up_front(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match=r"cannot write files into '.*a-file/results'"):
        check_writable(blocker / "results")
    with pytest.raises(PermissionError, match="choose a directory you can write"):
        write_results(make_result(), blocker / "results" / "r.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


# -- the probes section (decodability) ----------------------------------------------


def with_probes() -> RunResult:
    """make_result with a probe section holding an unseen test class, an MLP readout and an OOD transfer."""
    from fracbench.results import MLPReadout, Readout, Transfer
    from tests.conftest import SITE, probe_section

    result = make_result()
    # 7 test examples (as behaviour); the last row's class 2 never occurred in fit, so every probe has it wrong
    section = probe_section({"depth": ("1101100", "0100100", [0, 1, 0, 1, 0, 1, 2], [0, 1, 1, 2, 4, 5, 6], "1000000", "1100100")},
                            n_test_examples=7)
    latent = section.latents["depth"]
    latent.mlp = MLPReadout(site=SITE, hidden=64, test=Readout.from_correct([True] * 6 + [False]), gap=6 / 7 - 4 / 7)
    latent.transfer = {"ood/long_body/2": Transfer(n=3, accuracy=1 / 3, n_unseen=1, correct="100", unseen="001")}
    task = result.tasks["quote_close"]
    task.probes = section
    task.n_examples = {**task.n_examples, "train": 10}
    return RunResult.model_validate(result.model_dump())


def probes_edited(change) -> dict:
    data = with_probes().model_dump(mode="json")
    change(data["tasks"]["quote_close"]["probes"]["latents"]["depth"])
    return data


def test_a_results_file_with_probes_round_trips_exactly(tmp_path: Path) -> None:
    result = with_probes()
    assert read_results(write_results(result, tmp_path / "r.json")) == result


SITE_PATH = "depth.sites.`blocks.0.hook_resid_post`"  # pydantic quotes keys holding dots


@pytest.mark.parametrize(
    "change, where, message",
    [
        (lambda d: d["sites"]["blocks.0.hook_resid_post"]["test"].update(correct="1101101"), f"{SITE_PATH}.test",
         "accuracy is 0.5714285714285714 but the 7 raw correct flags give 0.7142857142857143"),
        (lambda d: d["sites"]["blocks.0.hook_resid_post"]["control_test"].update(accuracy=0.5), f"{SITE_PATH}.control_test",
         "accuracy is 0.5 but the 7 raw correct flags give"),
        (lambda d: d["sites"]["blocks.0.hook_resid_post"]["validation"].update(correct="11x"), f"{SITE_PATH}.validation.correct",
         "String should match pattern"),
        (lambda d: d.update(chance=0.5), "depth", "chance is 0.5 but the 7 raw test_labels give 0.42857142857142855"),
        (lambda d: d["lexical"].update(accuracy=0.5), "depth.lexical", "accuracy is 0.5 but the 7 raw correct flags give 0.14285714285714285"),
        (lambda d: d["lexical"].update(correct="1101101", accuracy=5 / 7), "depth",
         "lexical.correct[6] is '1' but that row's label never occurred in the fit rows"),
        (lambda d: d["lexical"].update(correct="110", accuracy=2 / 3), "depth", "lexical has 3 rows for 7 test_labels"),
        (lambda d: d.update(n_unseen=0), "depth", "n_unseen is 0 but 1 test_labels are not in fit_classes"),
        (lambda d: d.update(best_site="blocks.0.hook_resid_pre"), "depth",
         "best_site is 'blocks.0.hook_resid_pre' but the validation readouts select 'blocks.0.hook_resid_post'"),
        (lambda d: d["mlp"].update(gap=0.5), "depth", "mlp.gap is 0.5 but mlp.test.accuracy minus the best site's test.accuracy give"),
        (lambda d: d["mlp"]["test"].update(correct="1111111", accuracy=1.0), "depth",
         "mlp.test.correct[6] is '1' but that row's label never occurred in the fit rows"),
        (lambda d: d["transfer"]["ood/long_body/2"].update(correct="101", accuracy=2 / 3), "depth.transfer.ood/long_body/2",
         "correct[2] is '1' but that row's label never occurred in the fit rows"),
        (lambda d: d["transfer"]["ood/long_body/2"].update(n_unseen=0), "depth.transfer.ood/long_body/2", "n_unseen is 0 but unseen flags 1 rows"),
        (lambda d: d.update(test_examples=[0, 1, 1, 2, 4, 6, 5]), "depth", "test_examples must be non-negative and non-decreasing"),
        (lambda d: d.update(test_labels=[0, 1, 0, 1, 0, 1]), "depth", "test_labels has 6 rows and test_examples 7"),
    ],
)
def test_a_tampered_probe_number_is_refused_naming_the_field(change, where: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RunResult.model_validate(probes_edited(change))
    text = str(info.value)
    assert f"tasks.quote_close.probes.latents.{where}" in text
    assert message in text


def test_a_probe_section_without_the_lexical_baseline_is_refused() -> None:
    """Probe sections written before D was measured above the lexical baseline lack it: refused, not misread."""
    with pytest.raises(ValidationError, match=r"latents.depth.lexical\n  Field required"):
        RunResult.model_validate(probes_edited(lambda d: d.pop("lexical")))


def test_probe_rows_must_belong_to_the_recorded_examples() -> None:
    with pytest.raises(ValidationError, match="test_examples reaches 9 but n_test_examples is 7"):
        RunResult.model_validate(probes_edited(lambda d: d.update(test_examples=[0, 1, 1, 2, 4, 5, 9])))

    def fewer_train(d):
        d["tasks"]["quote_close"]["n_examples"]["train"] = 3

    data = with_probes().model_dump(mode="json")
    fewer_train(data)
    with pytest.raises(ValidationError, match=r"n_examples\['train'\] is 3 but the probes used 10 train examples"):
        RunResult.model_validate(data)


def without_circuits(d: dict) -> None:
    d["tasks"]["quote_close"]["circuits"] = None


def test_version_3_files_carry_no_untrained_twin_baseline(tmp_path: Path) -> None:
    path = tmp_path / "v3.json"
    data = older(with_probes().model_dump(mode="json"), "3")
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="schema_version 3 has no untrained-twin baseline, but task 'quote_close' has one"):
        read_results(path)
    data["tasks"]["quote_close"]["probes"]["latents"]["depth"]["untrained"] = None
    path.write_text(json.dumps(data))
    assert read_results(path).tasks["quote_close"].probes.latents["depth"].untrained is None


def erasure(n: int = 7, site: str | None = None) -> dict:
    from tests.conftest import SITE

    return {"site": site or SITE, "rank": 2, "n_fit": 30, "erased": [0.5] * n, "controls": [[1.0] * n, [2.0] * n]}


def test_version_9_files_carry_each_latent_s_erasure_and_older_ones_are_refused_it(tmp_path: Path) -> None:
    data = probes_edited(lambda d: d.update(erasure=erasure()))
    path = tmp_path / "v9.json"
    path.write_text(json.dumps(data))
    assert read_results(path).tasks["quote_close"].probes.latents["depth"].erasure.controls[1] == [2.0] * 7
    with pytest.raises(ValidationError, match="schema_version 8 has no erasure"):
        RunResult.model_validate({**data, "schema_version": "8", "provenance": {k: v for k, v in data["provenance"].items() if k != "config"}})


@pytest.mark.parametrize(("bad", "message"), [
    (erasure(n=5), "erasure has 5 test prompts; behaviour.test has 7"),
    (erasure(site="blocks.0.hook_resid_pre"), "erasure is at 'blocks.0.hook_resid_pre', not the best site"),
    ({**erasure(), "controls": [[1.0] * 7, [1.0] * 6]}, "every control must have one logit difference per test example"),
    ({**erasure(), "controls": []}, "controls"),
])
def test_an_erasure_that_does_not_match_its_latent_is_refused(bad: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message) if "'" in message else message):
        RunResult.model_validate(probes_edited(lambda d: d.update(erasure=bad)))


def test_the_untrained_twin_baseline_has_one_flag_per_test_row_and_is_wrong_on_unseen_classes() -> None:
    data = with_probes().model_dump(mode="json")
    data["tasks"]["quote_close"]["probes"]["latents"]["depth"]["untrained"]["test"] = {"accuracy": 1.0, "correct": "1111111"}
    with pytest.raises(ValidationError, match="untrained.test.correct"):
        RunResult.model_validate(data)
    data["tasks"]["quote_close"]["probes"]["latents"]["depth"]["untrained"]["test"] = {"accuracy": 1.0, "correct": "11"}
    with pytest.raises(ValidationError, match="untrained.test has 2 rows for 7 test_labels"):
        RunResult.model_validate(data)


def test_version_2_files_carry_no_circuit_sections(tmp_path: Path) -> None:
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(edited(lambda d: (without_circuits(d), d.update(schema_version="2")))))
    assert read_results(path).tasks["quote_close"].circuits is None
    path.write_text(json.dumps(edited(lambda d: older(d, "2"))))
    with pytest.raises(ValueError, match="schema_version 2 has no circuit sections"):
        read_results(path)


def test_version_1_files_are_read_as_behaviour_only(tmp_path: Path) -> None:
    path = tmp_path / "v1.json"
    data = edited(lambda d: (without_circuits(d), d.update(schema_version="1")))
    path.write_text(json.dumps(data))
    result = read_results(path)
    assert result.schema_version == "1" and result.tasks["quote_close"].probes is None
    path.write_text(json.dumps(with_probes().model_dump(mode="json") | {"schema_version": "1"}))
    with pytest.raises(ValueError, match="schema_version 1 has no probes section, but task 'quote_close' has one"):
        read_results(path)
    data["tasks"]["quote_close"]["probes"] = {"note": "v1 free-form"}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"v1\.json is not a valid fracbench results file"):
        read_results(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["kept"].update({"blocks.0.mlp.hook_post": [5, 1]}), "distinct ascending indices"),
        (lambda c: c["kept"].update({"blocks.0.mlp.hook_post": [1, 8]}), r"indices in 0\.\.7"),
        (lambda c: c["kept"].update({"no.such.site": [0]}), "not a node site"),
        (lambda c: c.update(n_nodes=3), "n_nodes is 3 but kept lists 2 nodes"),
        (lambda c: c.update(n_edges=40), "n_edges 40 exceeds edge_slots 32"),
        (lambda c: c.update(edge_slots=None), "both set .* or both None"),
        (lambda c: c["test"]["circuit"].pop(), "one value per prompt"),
        (lambda c: c["ood"]["ood/long_body/2"]["circuit"].append(1.0), "one per prompt"),
        (lambda c: c["ood"].update({"ood/long_body/9": c["ood"]["ood/long_body/2"]}), "no OOD behaviour split"),
    ],
)
def test_a_circuit_section_that_contradicts_itself_is_refused(change, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RunResult.model_validate(edited(lambda d: change(d["tasks"]["quote_close"]["circuits"])))


def test_specificity_must_refer_to_other_tasks_with_their_prompt_counts() -> None:
    with pytest.raises(ValidationError, match="no task with a circuit"):
        RunResult.model_validate(edited(lambda d: d.update(specificity={"copy_name": {"quote_close": [0.0]}})))
    with pytest.raises(ValidationError, match="must be another task"):
        RunResult.model_validate(edited(lambda d: d.update(specificity={"quote_close": {"quote_close": [0.0] * len(AWKWARD)}})))
