"""Running the suite: one model, many tasks, one results file.

Each (model, task) is an independent job — :func:`evaluate_task` depends only on the
model, the task and the settings — so a distributed executor can later run the jobs
on separate machines and assemble the same :class:`RunResult`.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from tqdm.auto import tqdm

from .behaviour import logit_diffs
from .decodability import check_probe_settings, measure_decodability
from .models import check_device, resolve_model
from .models.adapter import ModelAdapter
from .results import (
    SCHEMA_VERSION,
    ModelIdentity,
    Packages,
    Provenance,
    RunResult,
    SplitBehaviour,
    TaskResult,
    Timings,
    check_writable,
    write_results,
)
from .tasks import SUITE_VERSION, Task, resolve_tasks

N_TRAIN = 512  # train examples the decodability probes are fitted (and their site chosen) on


def evaluate_task(
    adapter: ModelAdapter,
    task: Task,
    n_test: int,
    seed: int,
    batch_size: int = 128,
    progress: bool = False,
    probes: bool = True,
    n_train: int = N_TRAIN,
) -> TaskResult:
    """Behaviour of ``adapter`` on ``task``'s test split and every OOD split, ``n_test`` items each;
    with ``probes``, also decodability (probes fitted on ``n_train`` train examples)."""
    behaviour = {}
    for split in task.splits():
        if split.name == "train":
            continue  # the zoo trains on it; behaviour is measured on held-out and shifted data
        examples = task.examples(split.name, n_test, seed)
        diffs = logit_diffs(adapter, task, examples, batch_size=batch_size, progress=progress, desc=f"{task.name} {split.name}")
        behaviour[split.name] = SplitBehaviour.from_logit_diffs(diffs.tolist(), split.axis, split.level)
    n_examples = {s: b.n for s, b in behaviour.items()}
    section = None
    if probes:
        section = measure_decodability(adapter, task, n_train, n_test, seed, batch_size=batch_size, device=str(adapter.device),
                                       progress=progress)
        n_examples = {"train": n_train, **n_examples}
    return TaskResult(version=task.version, n_examples=n_examples, behaviour=behaviour, probes=section)


def run(
    model_spec: str,
    tasks: str | list[str] = "all",
    out_dir: str | Path = "fracbench-results",
    device: str = "cpu",
    dtype: str = "float32",
    n_test: int = 512,
    seed: int = 0,
    batch_size: int = 128,
    progress: bool = True,
    command: list[str] | None = None,
    probes: bool = True,
    n_train: int = N_TRAIN,
) -> tuple[RunResult, Path]:
    """Evaluate ``model_spec`` on ``tasks`` and write the results file; returns it and its path.

    With ``probes`` (the default) decodability is measured too, and a figure of it by
    layer is written next to the results file (:func:`figure_path`). Every input is
    checked before the model is evaluated, and the files are written atomically at the
    end, so a failure anywhere leaves neither.
    """
    start = time.perf_counter()
    check_settings(n_test, batch_size, n_train if probes else None)
    check_device(device)
    selected = resolve_tasks(tasks)
    spec = resolve_model(model_spec, dtype)  # the spec's own dtype (hf:...,dtype=) wins over the argument
    out = check_writable(out_dir)
    adapter = spec.load(device)
    timings: dict[str, float] = {}
    results: dict[str, TaskResult] = {}
    for task in tqdm(selected, desc=adapter.info.name, disable=not progress):
        t0 = time.perf_counter()
        results[task.name] = evaluate_task(adapter, task, n_test, seed, batch_size, progress, probes, n_train)
        timings[task.name] = time.perf_counter() - t0
    created = datetime.now(timezone.utc)
    result = RunResult(
        schema_version=SCHEMA_VERSION,
        fracbench_version=package_version("fracbench") or "unknown",
        suite_version=SUITE_VERSION,
        created=created,
        model=ModelIdentity(**dataclasses.asdict(adapter.info)),
        provenance=Provenance(
            seeds={"examples": seed, **({"probes": seed} if probes else {})},
            batch_size=batch_size,
            packages=packages(),
            device=str(adapter.device),
            dtype=spec.dtype,
            command=list(sys.argv if command is None else command),
            timings=Timings(tasks=timings, total=time.perf_counter() - start),
        ),
        tasks=results,
    )
    return result, write_outputs(result, results_path(out, adapter.info.name, created))


def write_outputs(result: RunResult, path: Path) -> Path:
    """The results file and, when there are probes, its decodability figure; both or neither.

    The figure is drawn to a temporary file first and renamed into place only after the
    results file is written, so a failure in either leaves no output.
    """
    if not any(t.probes is not None for t in result.tasks.values()):
        return write_results(result, path)
    from .report import plot_decodability

    figure = figure_path(path)
    tmp = figure.with_name(f".{figure.name}.tmp")
    written = False
    try:
        plot_decodability(result, tmp, format="png")
        written = bool(write_results(result, path))
        os.replace(tmp, figure)
    except BaseException:
        for leftover in (tmp, path if written else None):
            if leftover is not None and leftover.exists():
                leftover.unlink()
        raise
    return path


def figure_path(results_file: Path) -> Path:
    """Where the decodability figure of a results file goes: ``<results stem>-decodability.png`` beside it."""
    return results_file.with_name(f"{results_file.stem}-decodability.png")


def check_settings(n_test: int, batch_size: int, n_train: int | None = None) -> None:
    """ValueErrors naming the option, before any work; ``n_train`` None: no probes."""
    if n_test < 1:
        raise ValueError(f"n_test (--n) must be at least 1 example per split, got {n_test}")
    if batch_size < 1:
        raise ValueError(f"batch_size (--batch-size) must be at least 1, got {batch_size}")
    if n_train is not None:
        check_probe_settings(n_train, n_test, 2, 1)


def results_path(out_dir: Path, model_name: str, created: datetime) -> Path:
    """``out_dir/<model name as a file name>-<UTC time>.json``, numbered if that name is taken."""
    stem = f"{sanitize(model_name)}-{created.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"
    path, i = out_dir / f"{stem}.json", 1
    while path.exists():
        i += 1
        path = out_dir / f"{stem}-{i}.json"
    return path


def sanitize(name: str) -> str:
    """A model name as a portable file name: ``hf:/models/pythia-70m`` -> ``hf-models-pythia-70m``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[-80:] or "model"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def packages() -> Packages:
    return Packages(
        python=platform.python_version(),
        torch=package_version("torch") or "unknown",
        numpy=package_version("numpy") or "unknown",
        pydantic=package_version("pydantic") or "unknown",
        transformers=package_version("transformers"),
    )
