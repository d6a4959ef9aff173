"""The board's storage: an append-only directory of accepted submissions with content-addressed names.

``<board>/submissions/<sha256 of the bytes>.json`` (``.json.xz`` when compressed): the name comes from the content, never from
anything in the document, so no model name can reach a path. A submission is written to a
temporary file, flushed, and hard-linked into place, which fails rather than overwrites if the
name exists; an exclusive lock (``<board>/.lock``) serializes submitters; a crash at any point
leaves at most a stray temporary file, which readers ignore. Accepted entries are never
rewritten or deleted. The board keeps one entry per claim: a model's weights (their sha256) on a set of tasks;
the same claim again, even rerun at another time, is a duplicate. Each entry's claim is read once and kept in
``<board>/.claims.json`` (entries never change, and their names are their contents' hashes), so a submission reads only
the entries added since; a missing or damaged cache is rebuilt from the entries.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..results import RESULTS_SUFFIX, XZ_MAGIC, RunResult, results_json
from .validate import Problem, Validation, validate_submission

SUBMISSIONS = "submissions"
CLAIMS_CACHE = ".claims.json"  # entry name -> [weights sha256, [task, ...]] (null: the entry does not say)


class Refused(ValueError):
    """A submission the board does not take; ``problems`` says why, field by field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


def submission_name(raw: bytes) -> str:
    """``<sha256 of the bytes>.json``, or ``.json.xz`` for a compressed results file (as ``fracbench run`` writes)."""
    return hashlib.sha256(raw).hexdigest() + (RESULTS_SUFFIX if raw.startswith(XZ_MAGIC) else ".json")


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
        claim = claim_of(validation.result)
        claims = board_claims(board)
        for name, other in claims.items():
            if other == claim:
                raise Refused([Problem("model.weights_sha256", f"these weights are already on the board for the same tasks, as "
                                       f"{name}; the board keeps one entry per model and task set")])
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
        _write_claims(Path(board), {**claims, target.name: claim})
    return target, validation


def check_board(board: str | Path) -> dict[str, list[Problem]]:
    """Every entry re-validated (what the board's own CI runs): file name -> its problems, for the entries that
    have any, including a name that is not the content's hash and two entries of the same claim."""
    return inspect_board(board)[1]


def inspect_board(board: str | Path) -> tuple[dict[str, Validation], dict[str, list[Problem]]]:
    """Every entry validated once: file name -> its validation, and file name -> its problems (entries with any)."""
    validations: dict[str, Validation] = {}
    out: dict[str, list[Problem]] = {}
    claims: dict[tuple, list[str]] = {}
    for path in entries(board):
        raw = path.read_bytes()
        validations[path.name] = validation = validate_submission(raw)
        problems = list(validation.problems)
        if path.name != submission_name(raw):
            problems.append(Problem("<file>", f"is named {path.name} but its content hashes to {submission_name(raw)}"))
        if problems:
            out[path.name] = problems
        claims.setdefault(claim_of(validation.result) if validation.result is not None else _claim_in(raw), []).append(path.name)
    for claim, names in claims.items():
        for name in names if claim is not None and len(names) > 1 else []:
            others = ", ".join(n for n in names if n != name)
            out.setdefault(name, []).append(Problem("model.weights_sha256", f"the same weights and tasks as {others}: one entry per claim"))
    return validations, out


def claim_of(result: RunResult) -> tuple[str, tuple[str, ...]]:
    """What an entry claims: the model's weights (by hash) and the tasks it was scored on."""
    return result.model.weights_sha256, tuple(sorted(result.tasks))


def _claim_in(raw: bytes) -> tuple[str, tuple[str, ...]] | None:
    """An entry's claim, read without validating it (None when the file does not say)."""
    try:
        data = json.loads(results_json(raw))
        return str(data["model"]["weights_sha256"]), tuple(sorted(data["tasks"]))
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def board_claims(board: str | Path) -> dict[str, tuple[str, tuple[str, ...]] | None]:
    """Every entry's claim, by entry name: from the cache for the entries it holds, read from the file for the others
    (and the cache brought up to date when it can be written). Call it under the board's lock to act on the answer."""
    board = Path(board)
    cached = _read_claims(board)
    names = [path.name for path in entries(board)]
    claims = {name: cached[name] if name in cached else _claim_in((board / SUBMISSIONS / name).read_bytes()) for name in names}
    if claims != cached:
        _write_claims(board, claims)
    return claims


def _read_claims(board: Path) -> dict[str, tuple[str, tuple[str, ...]] | None]:
    """The cache as written; {} when it is missing or not what :func:`_write_claims` writes (it is then rebuilt)."""
    try:
        data = json.loads((board / CLAIMS_CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or not all(claim is None or _is_claim(claim) for claim in data.values()):
        return {}
    return {name: None if claim is None else (claim[0], tuple(claim[1])) for name, claim in data.items()}


def _is_claim(value: object) -> bool:
    """``[weights sha256, [task, ...]]`` as the cache stores a claim."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], list)
            and all(isinstance(task, str) for task in value[1]))


def _write_claims(board: Path, claims: dict[str, tuple[str, tuple[str, ...]] | None]) -> None:
    """The cache, written atomically; a board the submitter cannot write to keeps no cache (a read-only checkout)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=board, prefix=".claims-", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({name: None if c is None else [c[0], list(c[1])] for name, c in sorted(claims.items())}, f)
        os.replace(tmp, board / CLAIMS_CACHE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def entries(board: str | Path) -> list[Path]:
    """The accepted submissions, by name (temporary files of interrupted submitters are not entries)."""
    directory = Path(board) / SUBMISSIONS
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith((".json", RESULTS_SUFFIX)) and not p.name.startswith("."))


def interrupted(board: str | Path) -> list[Path]:
    """Temporary files of submitters that were killed mid-write: never entries, safe to delete."""
    return sorted((Path(board) / SUBMISSIONS).glob(".incoming-*"))


@contextmanager
def _locked(board: Path) -> Iterator[None]:
    with open(board / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
