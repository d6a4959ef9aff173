"""The board's storage: an append-only directory of accepted submissions with content-addressed names.

``<board>/submissions/<sha256 of the bytes>.json``: the name comes from the content, never from
anything in the document, so no model name can reach a path. A submission is written to a
temporary file, flushed, and hard-linked into place, which fails rather than overwrites if the
name exists; an exclusive lock (``<board>/.lock``) serializes submitters; a crash at any point
leaves at most a stray temporary file, which readers ignore. Accepted entries are never
rewritten or deleted.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .validate import Problem, Validation, validate_submission

SUBMISSIONS = "submissions"


class Refused(ValueError):
    """A submission the board does not take; ``problems`` says why, field by field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


def submission_name(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest() + ".json"


def submit(raw: bytes, board: str | Path) -> tuple[Path, Validation]:
    """Validate ``raw`` and add it to ``board``; raises :class:`Refused` (the board unchanged) when it is
    invalid or already on the board."""
    validation = validate_submission(raw)
    if not validation.accepted:
        raise Refused(validation.problems)
    directory = Path(board) / SUBMISSIONS
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / submission_name(raw)
    with _locked(Path(board)):
        if target.exists():
            raise Refused([Problem("<file>", f"is already on the board as {target.name}")])
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".incoming-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.link(tmp, target)  # never replaces an existing entry
        finally:
            os.unlink(tmp)
    return target, validation


def check_board(board: str | Path) -> dict[str, list[Problem]]:
    """Every entry re-validated (what the board's own CI runs): file name -> its problems, for the entries that
    have any, including a name that is not the content's hash."""
    out: dict[str, list[Problem]] = {}
    for path in entries(board):
        raw = path.read_bytes()
        problems = list(validate_submission(raw).problems)
        if path.name != submission_name(raw):
            problems.append(Problem("<file>", f"is named {path.name} but its content hashes to {submission_name(raw)}"))
        if problems:
            out[path.name] = problems
    return out


def entries(board: str | Path) -> list[Path]:
    """The accepted submissions, by name (temporary files of interrupted submitters are not entries)."""
    directory = Path(board) / SUBMISSIONS
    return sorted(p for p in directory.glob("*.json") if not p.name.startswith(".")) if directory.is_dir() else []


@contextmanager
def _locked(board: Path) -> Iterator[None]:
    with open(board / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
