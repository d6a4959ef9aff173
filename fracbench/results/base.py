"""The one base of every results-schema class."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base of every schema class: unknown fields and non-finite floats are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # inherited by every schema class
