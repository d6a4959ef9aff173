"""What the board's duplicate check costs a submission: every entry's claim read from its file (no cache, as before
the claims cache) against the claims cache (a board where the last submission kept it); and a whole submission to a
board of 10 entries against one of 1,000 (issue 17: submit time flat in board size).

Run: ``python -m pytest benchmarks/test_board.py --benchmark-only -s`` with nothing else heavy on the machine.
The boards are copies (ENTRIES) or hard links (the sized boards) of the project board's largest entry (a full zoo run,
about 0.9 MB in xz); the ratios go to extra_info and are printed; nothing asserts a time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fracbench.leaderboard import store

ENTRIES = 40
BOARD = Path(__file__).resolve().parents[1] / "leaderboard"
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = max((BOARD / "submissions").iterdir(), key=lambda p: p.stat().st_size)  # the largest entry
    root = tmp_path_factory.mktemp("board")
    (root / store.SUBMISSIONS).mkdir()
    for i in range(ENTRIES):
        shutil.copyfile(source, root / store.SUBMISSIONS / f"{i:064x}.json.xz")
    return root


@pytest.mark.parametrize("cache", ["no cache: every entry read", "claims cache"])
def test_duplicate_check(benchmark, board: Path, cache: str) -> None:
    def setup():
        if cache.startswith("no cache"):
            (board / store.CLAIMS_CACHE).unlink(missing_ok=True)
        else:
            store.board_claims(board)  # the cache as the last submission left it

    claims = benchmark.pedantic(store.board_claims, args=(board,), setup=setup, rounds=3, iterations=1)
    assert len(claims) == ENTRIES
    TIMES[cache] = benchmark.stats.stats.min
    if len(TIMES) == 2:
        ratio = TIMES["no cache: every entry read"] / TIMES["claims cache"]
        benchmark.extra_info.update(entries=ENTRIES, ratio_without_to_with_cache=round(ratio, 1))
        print(f"\n{ENTRIES} entries: reading every claim takes {ratio:.0f}x the cached lookup")


SIZES = (10, 1_000)  # entries already on the board
SUBMIT_TIMES: dict[int, float] = {}


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n} entries")
def sized_board(request, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A board of ``n`` entries (hard links to the project board's dense entry: no disk is spent on copies) whose claims
    cache a previous submission left, and another model's entry to submit to it."""
    n = request.param
    entries = sorted((BOARD / "submissions").iterdir(), key=lambda p: p.stat().st_size)
    on_board, incoming = entries[-1], entries[0]
    root = tmp_path_factory.mktemp(f"board{n}")
    (root / store.SUBMISSIONS).mkdir()
    (root / store.SUBMISSIONS / on_board.name).hardlink_to(on_board)
    claim = store.board_claims(root)[on_board.name]  # one claim read from its file; the other entries claim the same
    names = [f"{i:064x}.json.xz" for i in range(n - 1)]
    for name in names:
        (root / store.SUBMISSIONS / name).hardlink_to(on_board)
    (root / store.CLAIMS_CACHE).write_text(json.dumps({name: [claim[0], list(claim[1])] for name in [on_board.name, *names]}))
    assert len(store.board_claims(root)) == n
    return root, incoming.read_bytes()


def test_submit_time_against_board_size(benchmark, sized_board: tuple[Path, bytes]) -> None:
    """The whole `fracbench submit` (validation, the duplicate check against every entry's claim, the write) of one
    entry to a board of 10 and of 1,000 entries; the ratio of the two goes to extra_info."""
    board, raw = sized_board
    n = len(store.entries(board))

    def setup():  # the board as it was before this submission
        for path in store.entries(board):
            if path.name == store.submission_name(raw):
                path.unlink()
        claims = json.loads((board / store.CLAIMS_CACHE).read_text())
        claims.pop(store.submission_name(raw), None)
        (board / store.CLAIMS_CACHE).write_text(json.dumps(claims))

    target, _ = benchmark.pedantic(store.submit, args=(raw, board), setup=setup, rounds=3, iterations=1)
    assert target.is_file() and len(store.entries(board)) == n + 1
    SUBMIT_TIMES[n] = benchmark.stats.stats.min
    benchmark.extra_info.update(entries=n)
    if len(SUBMIT_TIMES) == len(SIZES):
        ratio = SUBMIT_TIMES[SIZES[-1]] / SUBMIT_TIMES[SIZES[0]]
        benchmark.extra_info["ratio_to_smallest_board"] = round(ratio, 3)
        print(f"\nsubmit: {SUBMIT_TIMES[SIZES[0]]:.2f} s to a board of {SIZES[0]}, {SUBMIT_TIMES[SIZES[-1]]:.2f} s to {SIZES[-1]} "
              f"({ratio:.2f}x)")
