"""Running the suite: one model, many tasks, one results file.

Each (model, task) is a job: :func:`fracbench.evaluate.evaluate` depends only on the model, the task and the
:class:`~fracbench.config.RunConfig`, so a distributed executor can run the jobs on separate machines and assemble
the same :class:`RunResult`. A finished job is stored (:mod:`fracbench.jobs`) until the results file is written, so
an interrupted run resumes where it stopped. One step joins the jobs: specificity ablates each task's circuit on
every other task's test prompts, after all jobs, from what each job kept of its circuit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .circuits.canonical import Canonical, canonical_order
from .config import RunConfig
from .evaluate import measure_canonical
from .evaluate.coherence import SpecificityCircuit, TaskCircuit, measure_specificity, specificity_circuit
from .evaluate.timing import Stopwatch
from .executors import Executor, LocalExecutor
from .jobs import FinishedJob, JobStore, job_key
from .models import ModelSpec, as_adapter, check_device, resolve_model
from .models.adapter import ModelAdapter
from .results import (
    RESULTS_SUFFIX,
    SCHEMA_VERSION,
    ModelIdentity,
    Packages,
    Provenance,
    RunResult,
    Timings,
    check_writable,
    results_json,
    write_results,
)
from .results.coherence import ScoreEstimate, TaskScores
from .tasks import SUITE_VERSION, Task, get_task


def measure_job(spec: ModelSpec, task_name: str, config: RunConfig) -> FinishedJob:
    """One (model, task) job wherever it runs (a Ray worker, another process): the model loaded from ``spec`` (once per
    process and device), the task measured, its circuit's tensors on the CPU to travel back."""
    key = (spec, config.device)
    if key not in _LOADED:
        _LOADED.clear()  # one model at a time: a worker that moves on to another model frees the last one
        _LOADED[key] = canonical_order(spec.load(config.device))
    return _finished(_LOADED[key], get_task(task_name), config, progress=False)[0].to("cpu")


_LOADED: dict[tuple[ModelSpec, str], Canonical] = {}


def _finished(canonical: Canonical, task: Task, config: RunConfig, progress: bool) -> tuple[FinishedJob, TaskCircuit | None]:
    """``task`` measured on the canonical model, as a finished job (with its seconds), and its circuit."""
    t0, clock = time.perf_counter(), Stopwatch()
    result, circuit = measure_canonical(canonical, task, config, progress, clock)
    job = FinishedJob(result, time.perf_counter() - t0, clock.seconds, kept=circuit and circuit.kept, stats=circuit and circuit.stats)
    return job, circuit


def run(model: str | ModelAdapter | object, config: RunConfig | None = None, out_dir: str | Path = "fracbench-results", *,
        progress: bool = True, command: list[str] | None = None, executor: Executor | None = None) -> tuple[RunResult, Path]:
    """Evaluate ``model`` (a model spec, or a model in memory: a :class:`ModelAdapter` or a TransformerLens
    ``HookedTransformer``, :func:`~fracbench.models.as_adapter`) on ``config``'s tasks (default :class:`RunConfig`: every task, the default settings) and
    write the results file and its figures to ``out_dir``; returns the result and the file's path.

    Every input is checked before the model is evaluated. Each finished (model, task) job is kept under
    ``out_dir/.fracbench-jobs`` (:mod:`fracbench.jobs`) until the results file is written, so a run stopped at any
    point (Ctrl-C, a killed process) resumes when the same command is run again, and assembles the same file. The
    results file and its figures are written atomically at the end: all or none. With ``config.lm_eval`` (hf
    models), lm-eval runs fracbench's lm-eval tasks on the same model, n and seed, and its results go into the file's
    ``lm_eval`` section. ``executor`` measures the jobs (default: :class:`~fracbench.executors.LocalExecutor`, in
    this process; :class:`~fracbench.executors.RayExecutor` on a Ray cluster): the same file either way.
    """
    start = time.perf_counter()
    config = (config if config is not None else RunConfig()).check()
    check_device(config.device)
    spec = resolve_model(model, config.dtype) if isinstance(model, str) else None  # a spec's own dtype= wins over the config's
    if spec is not None and config.lm_eval and spec.kind != "hf":
        raise ValueError(f"--lm-eval runs lm-eval's HuggingFace model; {model} is a {spec.kind} model (give an hf: model)")
    if spec is None and config.lm_eval:
        raise ValueError("lm_eval runs lm-eval on a saved HuggingFace directory; give its hf: spec instead of a model in memory")
    if spec is None and executor is not None and not isinstance(executor, LocalExecutor):
        raise ValueError("a model in memory is measured in this process; give a model spec (zoo:NAME, hf:PATH) to run its "
                         "jobs on another executor")
    out = check_writable(out_dir)
    if spec is not None:
        adapter, dtype = spec.load(config.device), spec.dtype
    else:
        adapter = as_adapter(model, config.device)
        dtype = parameter_dtype(adapter)
    canonical = canonical_order(adapter)  # every stage measures this; the results name the user's model and its nodes
    store, version = JobStore(out), package_version("fracbench") or "unknown"
    keys = {name: job_key(adapter.info, dtype, get_task(name), config, SCHEMA_VERSION, version) for name in config.tasks}
    jobs = {name: job for name in config.tasks if (job := store.load(keys[name])) is not None}
    if jobs:
        tqdm.write(f"fracbench: resuming {adapter.info.name}: {len(jobs)} of {len(keys)} tasks already finished in {store.root}",
                   file=sys.stderr)
    measured: dict[str, TaskCircuit] = {}  # circuits measured in this process, kept whole for specificity

    def measure_here(name: str) -> FinishedJob:
        job, measured[name] = _finished(canonical, get_task(name), config, progress)
        return job

    pending = [name for name in config.tasks if name not in jobs]
    executor = executor if executor is not None else LocalExecutor()
    for name, job in tqdm(executor.run_jobs(spec, pending, config, measure_here), total=len(pending),
                          desc=adapter.info.name, disable=not progress):
        store.save(keys[name], job)
        jobs[name] = job
    found: dict[str, SpecificityCircuit] = {}
    for name in config.tasks:  # in the run's task order, whichever order the jobs finished in
        if measured.get(name) is not None:
            found[name] = measured[name]
        elif jobs[name].kept is not None:  # read back or measured elsewhere: rebuilt from its nodes and statistics
            moved = jobs[name].to(canonical.adapter.device)
            found[name] = specificity_circuit(canonical.adapter, get_task(name), moved.kept, moved.stats, config)
    jobs = {name: jobs[name] for name in config.tasks}
    t0 = time.perf_counter()
    specificity = measure_specificity(canonical.adapter, found, progress) if config.circuits else None
    specificity_seconds = time.perf_counter() - t0 if config.circuits else None
    created = datetime.now(timezone.utc)
    result = RunResult(
        schema_version=SCHEMA_VERSION,
        fracbench_version=version,
        suite_version=SUITE_VERSION,
        created=created,
        model=ModelIdentity(**dataclasses.asdict(adapter.info)),
        provenance=Provenance(
            seeds={"examples": config.seed, **({"probes": config.seed} if config.probes else {}),
                   **({"circuits": config.seed} if config.circuits else {})},
            batch_size=config.batch_size,
            packages=packages(),
            device=str(adapter.device),
            dtype=dtype,
            command=list(sys.argv if command is None else command),
            timings=Timings(tasks={n: j.seconds for n, j in jobs.items()}, stages={n: j.stages for n, j in jobs.items()},
                            specificity=specificity_seconds, total=time.perf_counter() - start),
            config=config,
        ),
        tasks={n: j.result for n, j in jobs.items()},
        specificity=specificity,
    )
    if config.lm_eval:
        from .integrations.lm_eval.harness import evaluate as lm_eval_evaluate

        section = lm_eval_evaluate(spec.target, spec.dtype, config)
        result = result.model_copy(update={"lm_eval": section})
    result = with_scores(result)
    path = write_outputs(result, results_path(out, adapter.info.name, created))
    store.discard(list(keys.values()))
    return result, path


def parameter_dtype(adapter: ModelAdapter) -> str:
    """The dtype of a model's parameters as results files name it ("float32"): a model in memory has no spec to say it."""
    module = getattr(adapter, "model", None)
    parameter = next(module.parameters(), None) if isinstance(module, torch.nn.Module) else None
    return "float32" if parameter is None else str(parameter.dtype).removeprefix("torch.")


def finished_results(out_dir: str | Path, model_spec: str, config: RunConfig) -> Path | None:
    """A results file in ``out_dir`` that this fracbench wrote for ``model_spec`` (the same weights and dtype) with
    ``config``: that model's run is done, and rerunning the command that made it need not repeat it. Files that
    cannot be read are passed over."""
    out = Path(out_dir)
    candidates = sorted(out.glob(f"*{RESULTS_SUFFIX}")) if out.is_dir() else []
    if not candidates:
        return None
    spec = resolve_model(model_spec, config.dtype)
    info = spec.load(config.device).info
    wanted = {"schema_version": SCHEMA_VERSION, "fracbench_version": package_version("fracbench") or "unknown",
              "name": info.name, "weights_sha256": info.weights_sha256, "dtype": spec.dtype, "config": config.model_dump(mode="json")}
    for path in candidates:
        try:
            doc = json.loads(results_json(path.read_bytes()))
            found = {"schema_version": doc["schema_version"], "fracbench_version": doc["fracbench_version"], "name": doc["model"]["name"],
                     "weights_sha256": doc["model"]["weights_sha256"], "dtype": doc["provenance"]["dtype"],
                     "config": doc["provenance"].get("config")}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if found == wanted:
            return path
    return None


def with_scores(result: RunResult) -> RunResult:
    """The result with each task's D, C, F and verdict as :mod:`fracbench.scoring` computes them from it."""
    from .scoring import scores_version, verdict

    def estimate(e) -> ScoreEstimate | None:
        return None if e is None else ScoreEstimate(value=e.value, low=e.low, high=e.high)

    tasks = {}
    for name, task in result.tasks.items():
        v = verdict(result, name)
        scores = TaskScores(version=scores_version(result), D=estimate(v.D), C=estimate(v.C), F=estimate(v.F), components=v.components,
                            verdict=v.verdict, reasons=v.reasons, cue_reliance=estimate(v.cue_reliance), relies_on_cue=v.relies_on_cue,
                            G=estimate(v.G))
        tasks[name] = task.model_copy(update={"scores": scores})
    return result.model_copy(update={"tasks": tasks})


def write_outputs(result: RunResult, path: Path) -> Path:
    """The results file and its figures (decodability by layer and erasure against random with probes; robustness and
    D vs C with circuits; reuse across regimes with regime circuits); all or none.

    Figures are drawn to temporary files first and renamed into place only after the results
    file is written, so a failure anywhere leaves no output.
    """
    from .report import plot_decodability, plot_erasure
    from .report.coherence import plot_coherence, plot_reuse

    figures = []
    if any(t.probes is not None for t in result.tasks.values()):
        figures.append((figure_path(path), plot_decodability))
        figures.append((figure_path(path, "erasure"), plot_erasure))
    if any(t.circuits is not None for t in result.tasks.values()):
        figures.append((figure_path(path, "coherence"), plot_coherence))
    if any(t.circuits is not None and t.circuits.regimes is not None for t in result.tasks.values()):
        figures.append((figure_path(path, "reuse"), plot_reuse))
    temporary = [figure.with_name(f".{figure.name}.tmp") for figure, _ in figures]
    written = False
    try:
        for tmp, (_, plot) in zip(temporary, figures):
            plot(result, tmp, format="png")
        written = bool(write_results(result, path))
        for tmp, (figure, _) in zip(temporary, figures):
            os.replace(tmp, figure)
    except BaseException:
        for leftover in [*temporary, path if written else None]:
            if leftover is not None and leftover.exists():
                leftover.unlink()
        raise
    return path


def figure_path(results_file: Path, kind: str = "decodability") -> Path:
    """Where a figure of a results file goes: ``<results name less .json.xz or .json>-<kind>.png`` beside it."""
    return results_file.with_name(f"{results_file.name.removesuffix('.xz').removesuffix('.json')}-{kind}.png")


def results_path(out_dir: Path, model_name: str, created: datetime) -> Path:
    """``out_dir/<model name as a file name>-<UTC time>.json.xz``, numbered if that name is taken."""
    stem = f"{sanitize(model_name)}-{created.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"
    path, i = out_dir / f"{stem}{RESULTS_SUFFIX}", 1
    while path.exists():
        i += 1
        path = out_dir / f"{stem}-{i}{RESULTS_SUFFIX}"
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
