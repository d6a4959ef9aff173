"""`fracbench submit`, `leaderboard check|build` and `verify`: exit 0 / 1 / 2, and messages that say what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fracbench.cli import main
from fracbench.config import RunConfig
from fracbench.leaderboard import MAX_SUBMISSION_BYTES, entries
from fracbench.results import results_json
from fracbench.runner import run
from fracbench.tasks import SUITE_VERSION

from .conftest import as_model


def write(tmp_path: Path, raw: bytes, name: str = "results.json") -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def test_submit_accepts_then_refuses_the_duplicate(tmp_path: Path, tiny_results: dict[str, bytes], capsys: pytest.CaptureFixture) -> None:
    board, results = tmp_path / "board", write(tmp_path, tiny_results["full"])
    board.mkdir()
    assert main(["submit", str(results), "--board", str(board)]) == 0
    out = capsys.readouterr().out
    assert "accepted as" in out and "the full suite" in out and "does not decode" in out and "fracbench leaderboard build" in out
    assert main(["submit", str(results), "--board", str(board)]) == 1
    assert "already on the board" in capsys.readouterr().err
    assert len(entries(board)) == 1


def test_submit_json_names_each_problem(tmp_path: Path, tiny_results: dict[str, bytes], capsys: pytest.CaptureFixture) -> None:
    data = json.loads(tiny_results["partial"])
    data["tasks"]["quote_close"]["scores"]["D"]["value"] = 0.9
    data["suite_version"] = "0.1"
    results = write(tmp_path, json.dumps(data).encode())
    assert main(["submit", str(results), "--dry-run", "--json"]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["accepted"] is False and answer["scores"] is None
    assert [p["field"] for p in answer["problems"]] == ["suite_version"]  # versions first: scores are not compared across them
    data["suite_version"] = SUITE_VERSION
    assert main(["submit", str(write(tmp_path, json.dumps(data).encode())), "--dry-run", "--json"]) == 1
    assert [p["field"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["tasks.quote_close.scores.D.value"]


def test_submit_dry_run_says_what_the_board_would_answer_and_writes_nothing(tmp_path: Path, tiny_results: dict[str, bytes],
                                                                          capsys: pytest.CaptureFixture) -> None:
    results = write(tmp_path, tiny_results["partial"])
    assert main(["submit", str(results), "--dry-run", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["accepted"] and answer["partial"] and answer["entry"] is None
    assert set(answer["scores"]["tasks"]) == {"quote_close", "bracket_depth"} and answer["scores"]["verdict"] == "does not decode"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_submit_usage_errors_exit_2_with_what_to_do(tmp_path: Path, tiny_results: dict[str, bytes], capsys: pytest.CaptureFixture) -> None:
    results = write(tmp_path, tiny_results["partial"])
    assert main(["submit", str(results), "--board", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "no board at" in err and "mkdir -p" in err and "--dry-run" in err and not (tmp_path / "nowhere").exists()
    assert main(["submit", str(tmp_path / "missing.json"), "--dry-run"]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err


def test_an_oversize_file_is_refused_without_being_read(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(MAX_SUBMISSION_BYTES + 1)  # sparse: no memory or disk spent
    assert main(["submit", str(huge), "--dry-run"]) == 1
    assert f"is {MAX_SUBMISSION_BYTES + 1:,} bytes; the board takes at most {MAX_SUBMISSION_BYTES:,}" in capsys.readouterr().err


def test_check_and_build_exit_1_naming_an_entry_edited_in_place(tmp_path: Path, tiny_results: dict[str, bytes],
                                                                capsys: pytest.CaptureFixture) -> None:
    board = tmp_path / "board"
    board.mkdir()
    for i, name in enumerate(["a", "b"]):
        main(["submit", str(write(tmp_path, as_model(tiny_results["partial"], name, i), f"{name}.json")), "--board", str(board)])
    assert main(["leaderboard", "check", str(board)]) == 0
    assert "2 entries, all valid" in capsys.readouterr().out
    assert main(["leaderboard", "build", str(board), "--no-progress"]) == 0
    assert "2 model pages" in capsys.readouterr().out and (board / "site" / "index.html").is_file()
    entry = entries(board)[0]
    data = json.loads(results_json(entry.read_bytes()))
    data["tasks"]["bracket_depth"]["scores"]["verdict"] = "coherent"
    entry.write_text(json.dumps(data))
    assert main(["leaderboard", "check", str(board)]) == 1
    err = capsys.readouterr().err
    assert f"submissions/{entry.name}: tasks.bracket_depth.scores.verdict" in err and "1 of 2 entries invalid" in err
    assert main(["leaderboard", "check", str(board), "--json"]) == 1
    assert list(json.loads(capsys.readouterr().out)["problems"]) == [entry.name]
    assert main(["leaderboard", "build", str(board), "--no-progress"]) == 1
    assert "not built" in capsys.readouterr().err


def test_verify_reruns_the_claim_and_reports_each_metric(tmp_path: Path, tiny_zoo: Path, tiny_results: dict[str, bytes],
                                                        capsys: pytest.CaptureFixture) -> None:
    claim = write(tmp_path, tiny_results["partial"])
    assert main(["verify", str(claim), "--model", "zoo:dense", "--no-progress", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["reproduced"] and answer["weights_match"] and answer["tasks"] == ["bracket_depth", "quote_close"]
    assert [(c["task"], c["metric"]) for c in answer["checks"]][:4] == [("bracket_depth", m) for m in ("D", "C", "F", "verdict")]
    assert all(c["reproduced"] and c["exact"] for c in answer["checks"])


def test_verify_refuses_a_claim_measured_with_an_ablation_it_no_longer_computes(tmp_path: Path, tiny_zoo: Path,
                                                                              tiny_results: dict[str, bytes], capsys) -> None:
    data = json.loads(tiny_results["partial"])
    data["schema_version"] = "7"  # scores version 3's first files: BOS pooled into the means
    data["provenance"]["timings"].update(stages={}, specificity=None)
    del data["provenance"]["config"]  # schema 12's
    for t in data["tasks"].values():
        t["circuits"]["ablation"] = "mean_with_bos"
        t["token_pruning"] = t["circuits"]["control"] = t["circuits"]["regimes"] = None  # schema 10's
        for latent in t["probes"]["latents"].values():
            latent["erasure"] = None  # schema 9's
    assert main(["verify", str(write(tmp_path, json.dumps(data).encode())), "--model", "zoo:dense", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'mean_with_bos' ablation (schema_version 7)" in err and "rerun the model with `fracbench run`" in err, err


def test_verify_fails_a_claim_the_model_does_not_reproduce(tmp_path: Path, tiny_zoo: Path, capsys: pytest.CaptureFixture) -> None:
    _, made = run("zoo:dense", RunConfig(tasks=["quote_close"], n_test=48, n_train=64, seed=1), tmp_path / "run", progress=False)
    data = json.loads(results_json(made.read_bytes()))  # enough test examples for a narrow interval
    for latent in data["tasks"]["quote_close"]["probes"]["latents"].values():  # claim perfect probes the model does not have
        readout = latent["sites"][latent["best_site"]]["test"]
        readout["correct"] = "".join("1" if c in latent["fit_classes"] else "0" for c in latent["test_labels"])
        readout["accuracy"] = readout["correct"].count("1") / len(readout["correct"])
        if latent["mlp"] is not None:  # keep the file self-consistent
            latent["mlp"]["gap"] = latent["mlp"]["test"]["accuracy"] - readout["accuracy"]
    claim = write(tmp_path, json.dumps(data).encode())
    assert main(["verify", str(claim), "--model", "zoo:dense", "--tasks", "quote_close", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "quote_close  D        1.0000 [1.0000, 1.0000]" in out and "NO" in out and "checks reproduced" in out, out
    assert "not exactly" in out
    data["model"]["weights_sha256"] = "0" * 64
    assert main(["verify", str(write(tmp_path, json.dumps(data).encode())), "--model", "zoo:dense", "--no-progress"]) == 1
    assert "weights are not the claim's" in capsys.readouterr().err
