"""The results schema: exact round trips, and every kind of bad document refused with its field named."""

from __future__ import annotations

import json
import math
import os
import struct
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from fracbench.results import (
    SCHEMA_VERSION,
    ModelIdentity,
    Packages,
    Provenance,
    RunResult,
    SplitBehaviour,
    TaskResult,
    Timings,
    check_writable,
    read_results,
    write_results,
)

# floats whose decimal forms are awkward: they must come back bit for bit
AWKWARD = [0.1, 1 / 3, -2.5e-300, 123456.78901234567, 5e-324, -1.7976931348623157e308, 2.0**-30]


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
        ),
        tasks={
            "quote_close": TaskResult(
                version="1",
                n_examples={"test": test.n, "ood/long_body/2": ood.n},
                behaviour={"test": test, "ood/long_body/2": ood},
                probes={"note": "free-form until its schema exists", "curve": [0.5, 0.25]},
            )
        },
    )


def edited(change) -> dict:
    """The valid result as plain data, after ``change(data)`` mutates it."""
    data = make_result().model_dump(mode="json")
    change(data)
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
        d["tasks"]["quote_close"]["probes"] = {"curve": [0.5, bad]}

    with pytest.raises(ValidationError, match=r"curve\[1\]"):
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
    with pytest.raises(ValueError, match=r"schema_version '99' is not one this fracbench reads \(it reads schema_version 1\)"):
        read_results(path)
    with pytest.raises(ValidationError, match="schema_version"):
        RunResult.model_validate(edited(lambda d: d.update(schema_version="2")))


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
