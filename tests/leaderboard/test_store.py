"""The board's storage: content-addressed, append-only, atomic, safe under concurrent submitters."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from fracbench.config import RunConfig
from fracbench.leaderboard import Refused, check_board, entries, submission_name, submit
from fracbench.leaderboard import store
from fracbench.results import results_json
from fracbench.runner import run


@pytest.fixture
def raw(tmp_path: Path, tiny_zoo: Path) -> bytes:
    _, path = run("zoo:dense", RunConfig(tasks=["quote_close"], n_test=3, n_train=24, seed=7), tmp_path / "out", progress=False)
    return path.read_bytes()


def variant(raw: bytes, i: int) -> bytes:
    """Another model's valid run: the same scores, other weights."""
    data = json.loads(results_json(raw))
    data["model"]["weights_sha256"] = f"{i:064x}"
    return json.dumps(data).encode()


def test_an_accepted_submission_is_stored_under_its_content_hash(tmp_path: Path, raw: bytes) -> None:
    path, validation = submit(raw, tmp_path / "board")
    assert validation.accepted and path.name == submission_name(raw) and path.read_bytes() == raw
    assert path.name.endswith(".json.xz") and entries(tmp_path / "board") == [path]  # as fracbench run wrote it, compressed
    assert entries(tmp_path / "board") == [path] and check_board(tmp_path / "board") == {}


def test_a_duplicate_or_invalid_submission_leaves_the_board_as_it_was(tmp_path: Path, raw: bytes) -> None:
    board = tmp_path / "board"
    path, _ = submit(raw, board)
    before = sorted(p.name for p in (board / "submissions").iterdir())
    with pytest.raises(Refused, match="already on the board"):
        submit(raw, board)
    tampered = json.loads(results_json(raw))
    tampered["tasks"]["quote_close"]["scores"]["D"]["value"] += 0.5
    with pytest.raises(Refused, match=r"tasks\.quote_close\.scores\.D\.value"):
        submit(json.dumps(tampered).encode(), board)
    assert sorted(p.name for p in (board / "submissions").iterdir()) == before and path.read_bytes() == raw


def test_the_board_check_names_an_entry_edited_in_place_and_ignores_interrupted_writes(tmp_path: Path, raw: bytes) -> None:
    board = tmp_path / "board"
    path, _ = submit(raw, board)
    (board / "submissions" / ".incoming-x.tmp").write_bytes(raw[: len(raw) // 2])  # a submitter killed mid-write
    assert check_board(board) == {}
    data = json.loads(results_json(raw))
    data["tasks"]["quote_close"]["scores"]["verdict"] = "coherent"
    path.write_text(json.dumps(data))
    problems = [str(p) for p in check_board(board)[path.name]]
    assert any("scores.verdict" in p for p in problems) and any("its content hashes to" in p for p in problems)


def test_the_same_model_rerun_on_the_same_tasks_is_a_duplicate(tmp_path: Path, raw: bytes) -> None:
    board = tmp_path / "board"
    submit(raw, board)
    rerun = json.loads(results_json(raw))
    rerun["created"] = "2026-01-01T00:00:00Z"  # other bytes, the same claim
    with pytest.raises(Refused, match=r"model\.weights_sha256: these weights are already on the board for the same tasks"):
        submit(json.dumps(rerun).encode(), board)
    copy = json.dumps(rerun).encode()  # a pull request that adds it by hand is caught by the board's check
    (board / "submissions" / submission_name(copy)).write_bytes(copy)
    assert all(any("one entry per claim" in str(p) for p in problems) for problems in check_board(board).values())
    assert len(check_board(board)) == 2


def test_each_entry_s_claim_is_read_once_and_a_lost_or_damaged_cache_is_rebuilt(tmp_path: Path, raw: bytes,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A submission reads the claims of the entries added since the last one (from any source), not every entry."""
    board = tmp_path / "board"
    for i in range(3):
        submit(variant(raw, i), board)
    by_hand = variant(raw, 3)  # an entry added without `submit` (a merged pull request)
    (board / "submissions" / submission_name(by_hand)).write_bytes(by_hand)
    read, real = [], store._claim_in
    monkeypatch.setattr(store, "_claim_in", lambda data: read.append(data) or real(data))
    submit(variant(raw, 4), board)
    assert read == [by_hand]  # the three cached entries were not read again
    duplicate = json.loads(results_json(variant(raw, 1)))
    duplicate["created"] = "2026-01-01T00:00:00Z"
    names = [p.name for p in entries(board)]
    for cache in ("missing", "truncated", "of another shape"):
        read.clear()
        if cache == "missing":
            (board / store.CLAIMS_CACHE).unlink()
        elif cache == "truncated":
            (board / store.CLAIMS_CACHE).write_text('{"x": [1')
        else:  # every entry named, each claim a string: read as claims it would let the duplicate in
            (board / store.CLAIMS_CACHE).write_text(json.dumps(dict.fromkeys(names, "ab")))
        with pytest.raises(Refused, match=r"these weights are already on the board for the same tasks, as " + submission_name(variant(raw, 1))):
            submit(json.dumps(duplicate).encode(), board)
        assert len(read) == 5  # rebuilt from every entry
    assert set(json.loads((board / store.CLAIMS_CACHE).read_text())) == {p.name for p in entries(board)}


def _submit_one(args: tuple[bytes, str]) -> str:
    return submit(*args)[0].name


def test_concurrent_submitters_all_land_and_nothing_is_corrupt(tmp_path: Path, raw: bytes) -> None:
    board = tmp_path / "board"
    payloads = [variant(raw, i) for i in range(6)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        names = pool.map(_submit_one, [(p, str(board)) for p in payloads])
    assert sorted(names) == sorted(submission_name(p) for p in payloads)
    assert [p.name for p in entries(board)] == sorted(names) and check_board(board) == {}
