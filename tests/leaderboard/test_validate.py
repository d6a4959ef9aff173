"""The board's validator: a real results file is accepted; a tampered, hostile or mismatched one is refused
with the field named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fracbench.config import RunConfig
from fracbench.leaderboard import MAX_SUBMISSION_BYTES, validate_submission
from fracbench.results import results_json
from fracbench.runner import run

TASKS = ["quote_close", "bracket_depth"]


@pytest.fixture
def submission(tmp_path: Path, tiny_zoo: Path) -> dict:
    """A real `fracbench run` results file (the tiny model on two tasks), as plain data."""
    _, path = run("zoo:dense", RunConfig(tasks=TASKS, n_test=3, n_train=24, seed=7), tmp_path / "out", progress=False)
    return json.loads(results_json(path.read_bytes()))


def submit(data: dict) -> list[str]:
    return [str(p) for p in validate_submission(json.dumps(data).encode()).problems]


def test_a_real_results_file_is_accepted_as_a_partial_submission(submission: dict) -> None:
    validation = validate_submission(json.dumps(submission).encode())
    assert validation.accepted and validation.problems == [] and validation.partial
    assert set(validation.result.tasks) == set(TASKS)


@pytest.mark.parametrize("key", ["value", "low", "high"])
def test_an_edited_score_is_refused_naming_the_field(submission: dict, key: str) -> None:
    submission["tasks"]["bracket_depth"]["scores"]["D"][key] += 0.01
    problems = submit(submission)
    assert len(problems) == 1 and problems[0].startswith(f"tasks.bracket_depth.scores.D.{key}: is ")
    assert "recomputed from the file's raw numbers" in problems[0]


def test_an_edited_verdict_is_refused(submission: dict) -> None:
    submission["tasks"]["quote_close"]["scores"]["verdict"] = "coherent"
    assert any(p.startswith("tasks.quote_close.scores.verdict: is 'coherent'") for p in submit(submission))


def test_an_edited_raw_number_no_longer_matches_the_stored_scores(submission: dict) -> None:
    latent = submission["tasks"]["quote_close"]["probes"]["latents"]["quote_type"]
    readout = latent["sites"][latent["best_site"]]["test"]
    readout["correct"] = "".join("1" if c in latent["fit_classes"] else "0" for c in latent["test_labels"])  # a perfect probe
    readout["accuracy"] = readout["correct"].count("1") / len(readout["correct"])
    if latent["mlp"] is not None:  # keep the file self-consistent: only the stored scores are now stale
        latent["mlp"]["gap"] = latent["mlp"]["test"]["accuracy"] - readout["accuracy"]
    assert any(p.startswith("tasks.quote_close.scores.D.value: ") for p in submit(submission)), submit(submission)


@pytest.mark.parametrize(
    "edit, field, message",
    [
        (lambda d: d.update(schema_version="3"), "schema_version", "the board takes schema_version 13"),
        (lambda d: d.update(suite_version="0.1"), "suite_version", "the board ranks suite"),
        (lambda d: d["tasks"]["quote_close"].update(version="0"), "tasks.quote_close.version", "has version '2'"),
        (lambda d: d.update(specificity=None) or d["tasks"].update(quote_closed=d["tasks"].pop("quote_close"))
         or d["provenance"]["config"].update(tasks=list(d["tasks"])), "tasks.quote_closed", "is not a task of suite"),
        (lambda d: d.update(specificity=None) or d["tasks"]["quote_close"].update(circuits=None, stress=None, sparsity=None),
         "tasks.quote_close.circuits", "is missing"),
        (lambda d: d["tasks"]["quote_close"]["scores"].update(version="1"), "tasks.quote_close.scores.version", "with scores version"),
        (lambda d: d["model"].update(name=["<script>"]), "model.name", "valid string"),
        (lambda d: d["provenance"]["config"].update(ranking="eap-ig", restarts=1), "provenance.config.ranking", "run with --ranking masks"),
    ],
)
def test_a_mismatched_or_malformed_document_is_refused_naming_the_field(submission: dict, edit, field: str, message: str) -> None:
    edit(submission)
    problems = submit(submission)
    assert any(p.startswith(f"{field}: ") and message in p for p in problems), problems


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"{not json", "is not JSON"),
        (b"[1, 2]", "holds a JSON list"),
        (b'{"schema_version": "4", "x": NaN}', "NaN and infinities are refused"),
        (b"\xff\xfe", "is not JSON"),
        (b" " * (MAX_SUBMISSION_BYTES + 1), "the board takes at most"),
        (b"[" * 200_000, "nests too deeply"),
        (b'{"schema_version": "4", "tasks": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nests too deeply"),
    ],
)
def test_hostile_bytes_get_a_message_not_a_crash(raw: bytes, message: str) -> None:
    validation = validate_submission(raw)
    assert not validation.accepted and validation.result is None
    assert len(validation.problems) == 1 and message in str(validation.problems[0])


def test_a_schema_valid_file_that_scoring_cannot_read_is_refused_not_raised(submission: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import fracbench.leaderboard.validate as validate

    def broken(result, task):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(validate, "verdict", broken)
    assert submit(submission) == ["<document>: could not be scored (ZeroDivisionError: division by zero); rerun fracbench on the model"]



@pytest.mark.parametrize("drop, field", [
    (lambda t: t["probes"]["latents"].pop("quote_type"), "tasks.quote_close.probes.latents"),
    (lambda t: t["behaviour"].pop("ood/long_body/1") and t["n_examples"].pop("ood/long_body/1") and
     [lat["transfer"].pop("ood/long_body/1") for lat in t["probes"]["latents"].values()] and
     t["circuits"]["ood"].pop("ood/long_body/1", None), "tasks.quote_close.behaviour"),
])
def test_leaving_out_what_a_score_averages_over_is_refused(submission: dict, drop, field: str) -> None:
    """A dropped hard latent or OOD split would raise D or C's mean: the board requires every one."""
    drop(submission["tasks"]["quote_close"])
    assert any(p.startswith(field + ": has no") for p in submit(submission)), submit(submission)
