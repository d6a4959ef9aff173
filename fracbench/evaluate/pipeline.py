"""One (model, task) job, measured: behaviour on every split, then, as the run's config asks, decodability, erasure
and token pruning, and the circuit with everything measured of it (docs/metrics.md). Pure: the model, the task and
the :class:`~fracbench.config.RunConfig` in, a :class:`~fracbench.results.TaskResult` out, no file read or written."""

from __future__ import annotations

from ..behaviour import logit_diffs
from ..circuits.canonical import Canonical, canonical_order
from ..config import RunConfig
from ..models import as_adapter
from ..models.adapter import ModelAdapter
from ..results import PrunedPrompt, SplitBehaviour, TaskResult, TokenPruning, recorded
from ..results.coherence import CircuitSection
from ..scoring import ood_faithfulness
from ..tasks import Task
from .coherence import N_SEARCH, TaskCircuit, measure_coherence, measure_reuse
from .decodability import measure_decodability
from .erasure import with_erasure
from .timing import Stopwatch
from .token_pruning import TOKEN_KEEP_SHARE, measure_token_pruning


def evaluate(model: ModelAdapter | object, task: Task, config: RunConfig, *, progress: bool = False) -> TaskResult:
    """One (model, task) job: ``task`` measured on ``model`` (a :class:`ModelAdapter`, or a TransformerLens
    ``HookedTransformer``: :func:`~fracbench.models.as_adapter`) as ``config`` says (its ``tasks`` and ``lm_eval``
    aside); no file is read or written."""
    return measure_task(as_adapter(model), task, config, progress=progress)[0]


def measure_task(adapter: ModelAdapter, task: Task, config: RunConfig, *, progress: bool = False,
                 clock: Stopwatch | None = None) -> tuple[TaskResult, TaskCircuit | None]:
    """Behaviour of ``adapter`` on ``task``'s test split and every OOD split, ``config.n_test`` items each; with
    ``config.probes``, also decodability, erasure and token pruning; with ``config.circuits``, the circuit (the
    smallest of ``config.restarts`` searches), its stress and OOD curves, regime circuits and sparsity, and what
    specificity across tasks needs of it (in the canonical model's node order). ``clock`` collects each stage's
    seconds. Everything is measured on the model in its canonical order (:mod:`fracbench.circuits.canonical`),
    circuits reported in the user's indices."""
    return measure_canonical(canonical_order(adapter), task, config.check(), progress, clock if clock is not None else Stopwatch())


def measure_canonical(canonical: Canonical, task: Task, config: RunConfig, progress: bool,
                      clock: Stopwatch) -> tuple[TaskResult, TaskCircuit | None]:
    """:func:`measure_task` on a model already in canonical order."""
    adapter = canonical.adapter
    n_test, seed, batch_size, n_train = config.n_test, config.seed, config.batch_size, config.n_train
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
    if config.probes and task.evidence(test_examples[0]) is not None:  # a task that names no evidence has nothing to score it by
        with clock("token_pruning"):
            pruned = measure_token_pruning(adapter, task, test_examples, progress=progress)
        token_pruning = TokenPruning(keep_share=TOKEN_KEEP_SHARE, prompts=[PrunedPrompt(**vars(p)) for p in pruned])
    if config.probes:
        with clock("probes"):
            section = measure_decodability(adapter, task, config, progress=progress)
        with clock("erasure"):
            section = with_erasure(adapter, task, section, behaviour["test"].logit_diffs, config, progress)
        n_examples = {"train": n_train, **n_examples}
    circuit = curves = sparsity = found = None
    if config.circuits:
        # the circuit is searched on the first n_search train examples and bisected on the next n_search,
        # a subset of those the probes used
        n_search = max(1, min(n_train // 2, N_SEARCH)) if config.probes else N_SEARCH
        circuit, curves, sparsity, found = measure_coherence(adapter, task, behaviour["test"].logit_diffs, config, n_search=n_search,
                                                             progress=progress, clock=clock)
        if circuit.search_sufficiency is not None:
            with clock("regimes"):
                measured = TaskResult(version=task.version, n_examples={"train": 2 * n_search, **n_examples}, behaviour=behaviour,
                                      probes=section, circuits=circuit, stress=curves, sparsity=sparsity)
                circuit = circuit.model_copy(update={"regimes": measure_reuse(adapter, task, found, circuit, usable_ood_splits(measured),
                                                                              config, progress=progress)})
        circuit = in_user_order(circuit, canonical)
        n_examples.setdefault("train", 2 * n_search)
    result = TaskResult(version=task.version, n_examples=n_examples, behaviour=behaviour, probes=section, circuits=circuit,
                        stress=curves, sparsity=sparsity, token_pruning=token_pruning)
    return result, found


def usable_ood_splits(t: TaskResult) -> list[str]:
    """The OOD splits where the model keeps its behaviour and the latents still decode: scoring's rule
    (:func:`~fracbench.scoring.ood_faithfulness`) on what the run has measured of ``t`` so far."""
    return ood_faithfulness(t, n_bootstrap=1).used if t.circuits.ood else []


def in_user_order(section: CircuitSection, canonical: Canonical) -> CircuitSection:
    """A circuit section measured in canonical order, its node indices (circuit, restarts, regimes) in the user's order."""
    restarts = [r.model_copy(update={"kept": canonical.user_indices(r.kept)}) for r in section.restarts]
    regimes = section.regimes
    if regimes is not None:
        regimes = regimes.model_copy(update={"circuits": {name: c.model_copy(update={"kept": canonical.user_indices(c.kept)})
                                                          for name, c in regimes.circuits.items()}})
    return section.model_copy(update={"kept": canonical.user_indices(section.kept), "restarts": restarts, "regimes": regimes})
