"""The leaderboard: submissions are validated by recomputing every score, then stored and published."""

from .validate import MAX_SUBMISSION_BYTES, TOLERANCE, Problem, Validation, validate_submission

__all__ = ["MAX_SUBMISSION_BYTES", "TOLERANCE", "Problem", "Validation", "validate_submission"]
