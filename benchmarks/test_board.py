"""What the board's duplicate check costs a submission: every entry's claim read from its file (no cache, as before
the claims cache) against the claims cache (a board where the last submission kept it).

Run: ``python -m pytest benchmarks/test_board.py --benchmark-only -s`` with nothing else heavy on the machine.
The board is ENTRIES copies of the project board's dense entry (a full zoo run, about 0.85 MB in xz); the ratio of the
two times goes to extra_info and is printed; nothing asserts a time.
"""

from __future__ import annotations

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
