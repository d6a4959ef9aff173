"""The leaderboard: submissions are validated by recomputing every score, then stored, ranked and published."""

from .site import SITE, build_site
from .store import Refused, check_board, claim_of, entries, inspect_board, interrupted, submission_name, submit
from .table import Entry, leaderboard_json, leaderboard_markdown, load_board
from .validate import MAX_SUBMISSION_BYTES, TOLERANCE, Problem, Validation, validate_submission

__all__ = [
    "MAX_SUBMISSION_BYTES",
    "TOLERANCE",
    "Problem",
    "Validation",
    "validate_submission",
    "Refused",
    "submit",
    "check_board",
    "claim_of",
    "entries",
    "inspect_board",
    "interrupted",
    "submission_name",
    "Entry",
    "load_board",
    "leaderboard_json",
    "leaderboard_markdown",
    "SITE",
    "build_site",
]
