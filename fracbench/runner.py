"""Running the suite: one model, many tasks, one results file.

Each (model, task) is an independent job — :func:`evaluate_task` depends only on the
model, the task and the settings — so a distributed executor can later run the jobs
on separate machines and assemble the same :class:`RunResult`. One step joins them:
specificity ablates each task's circuit on every other task's test prompts, after all
jobs, from what each job handed back (:class:`~fracbench.coherence.TaskCircuit`).
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
from .circuits.ablation import DEFAULT_ABLATION, check_ablation
from .circuits.canonical import Canonical, canonical_order
from .coherence import DEFAULT_RESTARTS, N_SEARCH, TaskCircuit, measure_coherence, measure_reuse, measure_specificity
from .decodability import check_probe_settings, measure_decodability
from .erasure import with_erasure
from .models import check_device, resolve_model
from .models.adapter import ModelAdapter
from .results import (
    RESULTS_SUFFIX,
    SCHEMA_VERSION,
    ModelIdentity,
    Packages,
    PrunedPrompt,
    Provenance,
    RunResult,
    SplitBehaviour,
    TaskResult,
    Timings,
    TokenPruning,
    check_writable,
    recorded,
    write_results,
)
from .results_coherence import CircuitSection, ScoreEstimate, TaskScores
from .tasks import SUITE_VERSION, Task, resolve_tasks
from .timing import Stopwatch
from .token_pruning import TOKEN_KEEP_SHARE, measure_token_pruning

N_TRAIN = 512  # train examples the decodability probes are fitted (and their site chosen) on
MAX_EXAMPLES = 10_000  # per split (--n, --n-train): every example's numbers are kept in the results file, about 10 KB of
# JSON per example over the suite at five restarts, and readers refuse a file past MAX_RESULTS_BYTES (256 MiB)


def evaluate_task(adapter: ModelAdapter, task: Task, n_test: int, seed: int, batch_size: int = 128, progress: bool = False,
                  probes: bool = True, n_train: int = N_TRAIN, circuits: bool = True, *, restarts: int = DEFAULT_RESTARTS,
                  ablation: str = DEFAULT_ABLATION) -> TaskResult:
    """One (model, task) job: :func:`measure_task`'s result without what specificity needs."""
    return measure_task(adapter, task, n_test, seed, batch_size, progress, probes, n_train, circuits, restarts=restarts,
                        ablation=ablation)[0]


def measure_task(
    adapter: ModelAdapter,
    task: Task,
    n_test: int,
    seed: int,
    batch_size: int = 128,
    progress: bool = False,
    probes: bool = True,
    n_train: int = N_TRAIN,
    circuits: bool = True,
    *,
    restarts: int = DEFAULT_RESTARTS,
    ablation: str = DEFAULT_ABLATION,
    clock: Stopwatch | None = None,
) -> tuple[TaskResult, TaskCircuit | None]:
    """Behaviour of ``adapter`` on ``task``'s test split and every OOD split, ``n_test`` items each;
    with ``probes``, also decodability (probes fitted on ``n_train`` train examples); with
    ``circuits``, the circuit (the smallest of ``restarts`` searches), its stress and OOD curves and
    sparsity (and what specificity across tasks needs of it, in the canonical model's node order), nodes outside
    circuits taking their ``ablation`` mean. ``clock`` collects each stage's seconds. Everything is measured on the
    model in its canonical order (:mod:`fracbench.circuits.canonical`), circuits reported in the user's indices."""
    return _measure(canonical_order(adapter), task, n_test, seed, batch_size, progress, probes, n_train, circuits,
                    restarts=restarts, ablation=ablation, clock=clock)


def _measure(canonical: Canonical, task: Task, n_test: int, seed: int, batch_size: int, progress: bool, probes: bool,
             n_train: int, circuits: bool, *, restarts: int, ablation: str,
             clock: Stopwatch | None) -> tuple[TaskResult, TaskCircuit | None]:
    """:func:`measure_task` on a model already in canonical order."""
    adapter = canonical.adapter
    clock = clock if clock is not None else Stopwatch()
    behaviour, drawn = {}, {}
    for split in task.splits():
        if split.name == "train":
            continue  # the zoo trains on it; behaviour is measured on held-out and shifted data
        examples = drawn[split.name] = task.examples(split.name, n_test, seed)
        with clock("behaviour"):
            diffs = logit_diffs(adapter, task, examples, batch_size=batch_size, progress=progress, desc=f"{task.name} {split.name}")
        behaviour[split.name] = SplitBehaviour.from_logit_diffs(recorded(diffs), split.axis, split.level)
    n_examples = {s: b.n for s, b in behaviour.items()}
    section = token_pruning = None
    test_examples = drawn["test"]
    if probes and task.evidence(test_examples[0]) is not None:  # a task that names no evidence has nothing to score it by
        with clock("token_pruning"):
            pruned = measure_token_pruning(adapter, task, test_examples, progress=progress)
        token_pruning = TokenPruning(keep_share=TOKEN_KEEP_SHARE, prompts=[PrunedPrompt(**vars(p)) for p in pruned])
    if probes:
        with clock("probes"):
            section = measure_decodability(adapter, task, n_train, n_test, seed, batch_size=batch_size, device=str(adapter.device),
                                           progress=progress)
        with clock("erasure"):
            section = with_erasure(adapter, task, section, behaviour["test"].logit_diffs, n_train, n_test, seed, progress)
        n_examples = {"train": n_train, **n_examples}
    circuit = curves = sparsity = found = None
    if circuits:
        # the circuit is searched on the first n_search train examples and bisected on the next n_search,
        # a subset of those the probes used
        n_search = max(1, min(n_train // 2, N_SEARCH)) if probes else N_SEARCH
        circuit, curves, sparsity, found = measure_coherence(adapter, task, behaviour["test"].logit_diffs, n_test, seed,
                                                             batch_size=batch_size, n_search=n_search, restarts=restarts,
                                                             progress=progress, ablation=ablation, clock=clock)
        if circuit.search_sufficiency is not None:
            with clock("regimes"):
                measured = TaskResult(version=task.version, n_examples={"train": 2 * n_search, **n_examples}, behaviour=behaviour,
                                      probes=section, circuits=circuit, stress=curves, sparsity=sparsity)
                circuit = circuit.model_copy(update={"regimes": measure_reuse(adapter, task, found, circuit, usable_ood_splits(measured),
                                                                              n_test, seed, batch_size, progress=progress)})
        circuit = in_user_order(circuit, canonical)
        n_examples.setdefault("train", 2 * n_search)
    result = TaskResult(version=task.version, n_examples=n_examples, behaviour=behaviour, probes=section, circuits=circuit,
                        stress=curves, sparsity=sparsity, token_pruning=token_pruning)
    return result, found


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
    circuits: bool = True,
    lm_eval: bool = False,
    restarts: int = DEFAULT_RESTARTS,
    ablation: str = DEFAULT_ABLATION,
) -> tuple[RunResult, Path]:
    """Evaluate ``model_spec`` on ``tasks`` and write the results file; returns it and its path.

    With ``probes`` (the default) decodability is measured too, and a figure of it by
    layer is written next to the results file (:func:`figure_path`). Every input is
    checked before the model is evaluated, and the files are written atomically at the
    end, so a failure anywhere leaves neither. With ``lm_eval`` (hf models), lm-eval runs
    fracbench's lm-eval tasks on the same model, n and seed, and its results go into the
    file's ``lm_eval`` section.
    """
    start = time.perf_counter()
    check_settings(n_test, batch_size, n_train if probes else None, restarts)
    check_ablation(ablation)
    check_device(device)
    selected = resolve_tasks(tasks)
    spec = resolve_model(model_spec, dtype)  # the spec's own dtype (hf:...,dtype=) wins over the argument
    if lm_eval and spec.kind != "hf":
        raise ValueError(f"--lm-eval runs lm-eval's HuggingFace model; {model_spec} is a {spec.kind} model (give an hf: model)")
    out = check_writable(out_dir)
    adapter = spec.load(device)
    canonical = canonical_order(adapter)  # every stage measures this; the results name the user's model and its nodes
    timings: dict[str, float] = {}
    stages: dict[str, dict[str, float]] = {}
    results: dict[str, TaskResult] = {}
    found: dict[str, TaskCircuit] = {}
    for task in tqdm(selected, desc=adapter.info.name, disable=not progress):
        t0 = time.perf_counter()
        clock = Stopwatch()
        results[task.name], circuit = _measure(canonical, task, n_test, seed, batch_size, progress, probes, n_train, circuits,
                                               restarts=restarts, ablation=ablation, clock=clock)
        stages[task.name] = clock.seconds
        if circuit is not None:
            found[task.name] = circuit
        timings[task.name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    specificity = measure_specificity(canonical.adapter, found, progress) if circuits else None
    specificity_seconds = time.perf_counter() - t0 if circuits else None
    created = datetime.now(timezone.utc)
    result = RunResult(
        schema_version=SCHEMA_VERSION,
        fracbench_version=package_version("fracbench") or "unknown",
        suite_version=SUITE_VERSION,
        created=created,
        model=ModelIdentity(**dataclasses.asdict(adapter.info)),
        provenance=Provenance(
            seeds={"examples": seed, **({"probes": seed} if probes else {}), **({"circuits": seed} if circuits else {})},
            batch_size=batch_size,
            packages=packages(),
            device=str(adapter.device),
            dtype=spec.dtype,
            command=list(sys.argv if command is None else command),
            timings=Timings(tasks=timings, stages=stages, specificity=specificity_seconds, total=time.perf_counter() - start),
        ),
        tasks=results,
        specificity=specificity,
    )
    if lm_eval:
        from .integrations.lm_eval.harness import evaluate

        section = evaluate(spec.target, spec.dtype, list(results), n_test, seed, str(adapter.device), batch_size)
        result = result.model_copy(update={"lm_eval": section})
    result = with_scores(result)
    return result, write_outputs(result, results_path(out, adapter.info.name, created))


def usable_ood_splits(t: TaskResult) -> list[str]:
    """The OOD splits where the model keeps its behaviour and the latents still decode: scoring's rule
    (:func:`~fracbench.scoring.ood_faithfulness`) on what the run has measured of ``t`` so far."""
    from .scoring import ood_faithfulness

    return ood_faithfulness(t, n_bootstrap=1).used if t.circuits.ood else []


def in_user_order(section: CircuitSection, canonical: Canonical) -> CircuitSection:
    """A circuit section measured in canonical order, its node indices (circuit, restarts, regimes) in the user's order."""
    restarts = [r.model_copy(update={"kept": canonical.user_indices(r.kept)}) for r in section.restarts]
    regimes = section.regimes
    if regimes is not None:
        regimes = regimes.model_copy(update={"circuits": {name: c.model_copy(update={"kept": canonical.user_indices(c.kept)})
                                                          for name, c in regimes.circuits.items()}})
    return section.model_copy(update={"kept": canonical.user_indices(section.kept), "restarts": restarts, "regimes": regimes})


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
    from .report_coherence import plot_coherence, plot_reuse

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


def check_settings(n_test: int, batch_size: int, n_train: int | None = None, restarts: int = DEFAULT_RESTARTS) -> None:
    """ValueErrors naming the option, before any work; ``n_train`` None: no probes."""
    if restarts < 1:
        raise ValueError(f"restarts (--restarts) must be at least 1 search, got {restarts}")
    if n_test < 1:
        raise ValueError(f"n_test (--n) must be at least 1 example per split, got {n_test}")
    for option, n in (("n_test (--n)", n_test), ("n_train (--n-train)", n_train or 0)):
        if n > MAX_EXAMPLES:
            raise ValueError(f"{option} is {n:,}; the most a run takes is {MAX_EXAMPLES:,} examples per split (every example's "
                             "numbers are kept in the results file, which must stay readable); give at most that")
    if batch_size < 1:
        raise ValueError(f"batch_size (--batch-size) must be at least 1, got {batch_size}")
    if n_train is not None:
        check_probe_settings(n_train, n_test, 2, 1)


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
