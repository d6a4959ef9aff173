"""A submitter killed (SIGKILL) mid-write leaves the board exactly as before, or with the complete entry:
`fracbench leaderboard check` passes either way, and the next submitter is not blocked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fracbench.cli import main
from fracbench.leaderboard import check_board, entries, submission_name, submit

from .conftest import as_model

# Runs `submit` in a child process with one step replaced by "announce, then hang", so the parent can kill it there.
CHILD = r"""
import os, sys, time
from fracbench.leaderboard import store

raw_path, board, point, ready = sys.argv[1:]

def hang():
    open(ready, "w").close()
    time.sleep(600)

if point == "mid-write":  # half of the bytes written to the temporary file and flushed to disk
    real_fdopen = os.fdopen
    def fdopen(fd, mode):
        f = real_fdopen(fd, mode)
        def write(data):
            f.raw.write(data[: len(data) // 2])  # past the buffer, straight to the file
            os.fsync(f.fileno())
            hang()
        f.write = write
        return f
    store.os.fdopen = fdopen
elif point == "before-link":  # the temporary file complete, not yet linked into place
    store.os.link = lambda *a: hang()
elif point == "after-link":  # the entry linked into place, the temporary file not yet removed
    store.os.unlink = lambda *a: hang()
store.submit(open(raw_path, "rb").read(), board)
"""


@pytest.mark.parametrize("point", ["mid-write", "before-link", "after-link"])
def test_a_submitter_killed_mid_write_leaves_a_board_that_checks(tmp_path: Path, tiny_results: dict[str, bytes], point: str,
                                                                 capsys: pytest.CaptureFixture) -> None:
    board = tmp_path / "board"
    first, _ = submit(as_model(tiny_results["partial"], "already there", 1), board)
    raw = as_model(tiny_results["partial"], "killed", 2)
    (tmp_path / "raw.json").write_bytes(raw)
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "raw.json"), str(board), point, str(ready)])
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert child.poll() is None, f"the submitter exited ({child.returncode}) before reaching {point}"
        assert time.monotonic() < deadline, f"the submitter never reached {point}"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    stray = [p.name for p in (board / "submissions").iterdir() if p.name.startswith(".incoming-")]
    assert len(stray) == 1  # the killed writer's temporary file is left behind, and ignored
    assert check_board(board) == {}
    expected = [first.name] + ([submission_name(raw)] if point == "after-link" else [])
    assert sorted(p.name for p in entries(board)) == sorted(expected)
    assert first.read_bytes() == as_model(tiny_results["partial"], "already there", 1)
    if point == "after-link":
        assert (board / "submissions" / submission_name(raw)).read_bytes() == raw  # linked only once complete
    assert main(["leaderboard", "check", str(board)]) == 0
    assert "an interrupted submission" in capsys.readouterr().out
    submit(as_model(tiny_results["partial"], "next", 3), board)  # the dead submitter's lock died with it
