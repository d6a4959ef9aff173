"""The results file: one JSON document per (model, suite run), with a versioned schema.

Every aggregate is stored next to the raw per-item numbers it comes from, and the
schema checks that they agree, so a reader (the leaderboard) never has to trust a
submitted number. ``docs/results.md`` describes every field.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    ValidationError,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = "1"  # bump on any change a reader of the old schema would misread
READABLE_SCHEMA_VERSIONS = ("1",)  # versions read_results accepts
ID_SPLITS = ("train", "test")  # in-distribution split names; the rest are ood/<axis>/<level>
AGGREGATE_TOLERANCE = 1e-9  # stored aggregates must match the recomputed ones this closely


class Strict(BaseModel):
    """Base of every schema class: unknown fields and non-finite floats are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # inherited by every class below


class ModelIdentity(Strict):
    """Which model was evaluated: enough to tell two models apart and find the weights again."""

    name: str  # e.g. "zoo:dense" or "hf:/models/pythia-70m"
    kind: str  # adapter kind: "native" or "hf"
    n_params: int = Field(ge=0)  # parameter count
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # hash of every parameter and buffer, in name order
    n_layers: int = Field(ge=0)  # transformer blocks
    d_model: int = Field(ge=1)  # residual stream width
    n_ctx: int = Field(ge=1)  # longest input, in tokens, the model accepts


class Packages(Strict):
    """Versions of what produced the numbers."""

    python: str  # e.g. "3.11.7"
    torch: str  # e.g. "2.3.1+cpu"
    numpy: str
    pydantic: str
    transformers: str | None  # None when not installed (native models do not need it)


class Timings(Strict):
    """Wall-clock seconds."""

    tasks: dict[str, NonNegativeFloat]  # task name -> seconds spent evaluating it
    total: NonNegativeFloat  # the whole run: model loading, every task, building the result


class Provenance(Strict):
    """How the run was made: enough to reproduce it."""

    seeds: dict[str, int]  # what each seed drove, e.g. {"examples": 0}
    batch_size: int = Field(ge=1)  # examples per forward pass (padding can move the last bits of a logit)
    packages: Packages
    device: str  # torch device the model ran on, e.g. "cpu", "cuda:0"
    dtype: str  # parameter dtype, e.g. "float32"
    command: list[str]  # the command line (argv) that produced this file
    timings: Timings


class SplitBehaviour(Strict):
    """The model's target-vs-foil choice on one split: raw logit differences and their aggregates."""

    n: int = Field(ge=1)  # items evaluated; equals len(logit_diffs)
    accuracy: float = Field(ge=0, le=1)  # fraction of items with logit_diff > 0
    mean_logit_diff: float  # mean of logit_diffs
    logit_diffs: list[float]  # per item, in example order: logit(target) - logit(foil) at the last prompt token
    ood_axis: str | None  # the OOD axis, or None for an in-distribution split
    level: int = Field(ge=0)  # OOD severity 1..n_levels; 0 in-distribution

    @model_validator(mode="after")
    def _aggregates_match_raw(self) -> SplitBehaviour:
        if self.n != len(self.logit_diffs):
            raise ValueError(f"n is {self.n} but there are {len(self.logit_diffs)} logit_diffs")
        acc, mean = accuracy_of(self.logit_diffs), mean_of(self.logit_diffs)
        for field, stored, recomputed in (("accuracy", self.accuracy, acc), ("mean_logit_diff", self.mean_logit_diff, mean)):
            if not math.isclose(stored, recomputed, rel_tol=AGGREGATE_TOLERANCE, abs_tol=AGGREGATE_TOLERANCE):
                raise ValueError(f"{field} is {stored!r} but the {self.n} raw logit_diffs give {recomputed!r}")
        if (self.ood_axis is None) != (self.level == 0):
            raise ValueError(f"ood_axis {self.ood_axis!r} with level {self.level}: in-distribution is (None, 0), OOD levels start at 1")
        return self

    @classmethod
    def from_logit_diffs(cls, logit_diffs: list[float], ood_axis: str | None, level: int) -> SplitBehaviour:
        """The aggregates computed here, exactly as the validator recomputes them."""
        return cls(
            n=len(logit_diffs),
            accuracy=accuracy_of(logit_diffs),
            mean_logit_diff=mean_of(logit_diffs),
            logit_diffs=logit_diffs,
            ood_axis=ood_axis,
            level=level,
        )


class TaskResult(Strict):
    """Everything measured for one (model, task)."""

    version: str  # the task's version: numbers are comparable only between equal versions
    n_examples: dict[str, NonNegativeInt]  # split name -> examples used from it (by any section)
    behaviour: dict[str, SplitBehaviour]  # split name ("test", "ood/<axis>/<level>") -> behaviour
    # Placeholders for sections later versions of the suite fill in (decodability probes,
    # circuits, stress tests). Free-form until their schema is written; floats in them
    # must still be finite.
    probes: dict[str, Any] | None = None  # per latent: probe accuracies, selectivity
    circuits: dict[str, Any] | None = None  # circuit size and faithfulness
    stress: dict[str, Any] | None = None  # robustness curves under perturbation

    @field_validator("probes", "circuits", "stress")
    @classmethod
    def _finite(cls, section: dict[str, Any] | None) -> dict[str, Any] | None:
        if section is not None:
            check_finite_tree(section, "")
        return section

    @model_validator(mode="after")
    def _splits_consistent(self) -> TaskResult:
        for split, b in self.behaviour.items():
            expected = split in ID_SPLITS if b.ood_axis is None else split == f"ood/{b.ood_axis}/{b.level}"
            if not expected:
                raise ValueError(f"behaviour split {split!r} does not match its ood_axis {b.ood_axis!r} and level {b.level}")
            if self.n_examples.get(split) != b.n:
                raise ValueError(f"n_examples[{split!r}] is {self.n_examples.get(split)} but behaviour[{split!r}].n is {b.n}")
        return self


class RunResult(Strict):
    """One model evaluated on (part of) the suite: the document a results file holds."""

    schema_version: Literal["1"]  # this schema's version, SCHEMA_VERSION
    fracbench_version: str  # the fracbench that wrote the file
    suite_version: str  # the task suite's version (fracbench.tasks.SUITE_VERSION)
    created: AwareDatetime  # when the run finished, ISO 8601 with a time zone (UTC when fracbench writes it)
    model: ModelIdentity
    provenance: Provenance
    tasks: dict[str, TaskResult]  # task name -> its results


def accuracy_of(logit_diffs: list[float]) -> float:
    """Fraction of items the model gets right (logit_diff > 0; a tie is wrong)."""
    return sum(d > 0 for d in logit_diffs) / len(logit_diffs)


def mean_of(logit_diffs: list[float]) -> float:
    """Mean with exactly rounded summation, so every reader recomputes the same number."""
    return math.fsum(logit_diffs) / len(logit_diffs)


def check_finite_tree(value: Any, path: str) -> None:
    """Raise naming the path of the first NaN or infinity anywhere in nested dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path or 'value'} is {value!r}; every number must be finite")
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite_tree(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_finite_tree(v, f"{path}[{i}]")


def check_writable(directory: str | Path) -> Path:
    """Create ``directory`` if needed and prove a file can be written in it, before any expensive work."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=d, prefix=".fracbench-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(
            f"cannot write files into {str(d)!r}: {err.strerror or err}; choose a directory you can write (--out)"
        ) from None
    return d


def write_results(result: RunResult, path: str | Path) -> Path:
    """Write ``result`` as JSON atomically: the file is complete and valid, or it does not exist."""
    path = Path(path)
    check_writable(path.parent)
    text = result.model_dump_json(indent=2) + "\n"
    RunResult.model_validate_json(text)  # never write what read_results would refuse
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_results(path: str | Path) -> RunResult:
    """Read and validate a results file; a schema version this fracbench does not know is refused."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not JSON: {err}") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version not in READABLE_SCHEMA_VERSIONS:
        raise ValueError(
            f"{path}: schema_version {version!r} is not one this fracbench reads "
            f"(it reads schema_version {', '.join(READABLE_SCHEMA_VERSIONS)}); use the fracbench that wrote it, or upgrade"
        )
    try:
        return RunResult.model_validate_json(text)
    except ValidationError as err:
        raise ValueError(f"{path} is not a valid fracbench results file: {err}") from None


__all__ = [
    "SCHEMA_VERSION",
    "READABLE_SCHEMA_VERSIONS",
    "ModelIdentity",
    "Packages",
    "Timings",
    "Provenance",
    "SplitBehaviour",
    "TaskResult",
    "RunResult",
    "accuracy_of",
    "mean_of",
    "check_writable",
    "write_results",
    "read_results",
]
