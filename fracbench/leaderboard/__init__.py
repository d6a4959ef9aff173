"""The leaderboard: submissions are validated by recomputing every score, then stored and published."""

from .store import Refused, check_board, entries, submission_name, submit
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
    "entries",
    "submission_name",
]
