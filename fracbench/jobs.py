"""Finished (model, task) jobs, kept so that an interrupted run resumes where it stopped.

A job is named by everything its numbers depend on (:func:`job_key`): the model's identity and weights, the task
and its version, the results schema, fracbench's version and the run's measurement settings. A finished job is one
file, ``<out>/.fracbench-jobs/<key>.pt``, written to a temporary name and renamed into place, so that a run killed
at any moment leaves each job whole or absent. It holds the task's result as JSON, the stage timings, and what the
cross-task specificity step needs of its circuit (the nodes kept and their ablation values), so a resumed run
assembles the same results file as an uninterrupted one. The run deletes its jobs once its results file is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import torch

from .circuits.ablation import NodeStatistics
from .config import RunConfig
from .models.adapter import ModelInfo
from .results import TaskResult
from .tasks import Task

JOBS_DIR = ".fracbench-jobs"  # under the run's results directory
JOB_FORMAT = 1  # bump when a job file's contents change meaning


@dataclasses.dataclass
class FinishedJob:
    """One (model, task) job's outcome: its result, its seconds (total and by stage) and, with circuits, its circuit's
    nodes in canonical order with the ablation statistics they were measured against."""

    result: TaskResult
    seconds: float
    stages: dict[str, float]
    kept: dict[str, torch.Tensor] | None = None
    stats: NodeStatistics | None = None

    def to(self, device: torch.device | str) -> FinishedJob:
        """The job with its circuit's tensors on ``device`` (a stored job is read onto the CPU)."""
        if self.kept is None or self.stats is None:
            return self
        stats = NodeStatistics(**{name: {site: t.to(device) for site, t in getattr(self.stats, name).items()}
                                  for name in ("means", "stds", "position_means")}, ablation=self.stats.ablation)
        return dataclasses.replace(self, kept={site: k.to(device) for site, k in self.kept.items()}, stats=stats)


def job_key(model: ModelInfo, dtype: str, task: Task, config: RunConfig, schema_version: str, fracbench_version: str) -> str:
    """The name of (``model`` in ``dtype``, ``task``) measured with ``config``: a sha256 over everything the numbers depend on."""
    named = {"format": JOB_FORMAT, "schema_version": schema_version, "fracbench": fracbench_version, "model": dataclasses.asdict(model),
             "dtype": dtype, "task": task.name, "task_version": task.version, "settings": config.job_settings()}
    return hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()


def first_line(err: BaseException, limit: int = 200) -> str:
    """An exception's message, its first line only (torch's unpickling errors run to a page)."""
    lines = str(err).strip().splitlines()
    return lines[0][:limit] if lines else ""


class JobStore:
    """The finished jobs under ``out_dir/.fracbench-jobs``."""

    def __init__(self, out_dir: Path) -> None:
        self.root = Path(out_dir) / JOBS_DIR

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str) -> FinishedJob | None:
        """The job stored under ``key``; None when there is none, or (with a warning) when its file cannot be read, so
        that the job is measured again."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("format") != JOB_FORMAT:
                raise ValueError(f"job format {stored.get('format')}, this fracbench writes {JOB_FORMAT}")
            stats = None if stored["stats"] is None else NodeStatistics(**stored["stats"])
            return FinishedJob(TaskResult.model_validate_json(stored["result"]), stored["seconds"], stored["stages"],
                               stored["kept"], stats)
        except Exception as err:  # a damaged cache entry is measured again, never trusted
            warnings.warn(f"fracbench: the finished job {path} cannot be read ({type(err).__name__}: {first_line(err)}); measuring it again",
                          stacklevel=2)
            return None

    def save(self, key: str, job: FinishedJob) -> Path:
        """Store ``job`` under ``key``, whole or not at all."""
        self.root.mkdir(parents=True, exist_ok=True)
        cpu = job.to("cpu")
        stats = None if cpu.stats is None else vars(cpu.stats)  # NodeStatistics' fields, as load() rebuilds it
        path, tmp = self.path(key), self.root / f".{key}.pt.tmp"
        try:
            torch.save({"format": JOB_FORMAT, "result": job.result.model_dump_json(), "seconds": job.seconds, "stages": job.stages,
                        "kept": cpu.kept, "stats": stats}, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def discard(self, keys: list[str]) -> None:
        """Delete these jobs (their run's results file is written), and the directory once it is empty."""
        for key in keys:
            self.path(key).unlink(missing_ok=True)
            (self.root / f".{key}.pt.tmp").unlink(missing_ok=True)  # a save a killed run did not finish
        try:
            self.root.rmdir()
        except OSError:  # absent, or other runs' jobs are still there
            pass

    def __len__(self) -> int:
        return len(list(self.root.glob("*.pt"))) if self.root.is_dir() else 0
