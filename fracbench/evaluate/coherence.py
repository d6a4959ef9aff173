"""Coherence measurements for one (model, task): the circuit, its faithfulness in and out of
distribution, stress curves and activation sparsity; and, across tasks, specificity.

Everything goes through the adapter. Prompts are tokenized once per split
(:class:`~fracbench.circuits.ablation.PromptBatches`) and the full model's logit
differences come from the behaviour already measured, never recomputed. Definitions
and references: docs/metrics.md ("Circuits", "Stress", "Coherence C").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..circuits import (
    DEFAULT_TARGET,
    NodeStatistics,
    PromptBatches,
    ablated_logit_diffs,
    measure_conditions,
    node_sites,
    node_statistics,
    search_circuits,
)
from ..circuits.control import measure_control
from ..circuits.edges import count_edges, edge_slots
from ..circuits.regimes import SHORT_PROMPT_CHARS, ReportedCircuit, measure_regimes
from ..circuits.curves import faithfulness_curves, learned_ranking, ranking_curve
from ..circuits.keys import NodeOrder, node_order
from ..circuits.nodes import NodeSite
from ..circuits.search import DEFAULT_PENALTY, DEFAULT_STEPS, Circuit, SearchSettings
from ..config import RunConfig, check_ablation
from ..models.adapter import ModelAdapter
from ..perturbations import stress
from ..perturbations.sparsity import sparsity_by_severity
from ..results import recorded, smallest_restart
from ..results.coherence import (
    CircuitConditions,
    CircuitSection,
    ControlCircuit,
    Curve,
    FaithfulnessCurve,
    OODCircuit,
    RegimeCircuit,
    RegimeSection,
    SearchRestart,
    SparsityAxis,
    SparsityPoint,
    StressSection,
)
from ..tasks import Example, Task
from .decodability import default_sites
from .timing import Stopwatch

N_SEARCH = 256  # train examples: node statistics, mask search and bisection
SEARCH_BATCH = 64  # prompts per mask-search step (Gao et al.'s batch), whatever the run's batch size; each restart gets the whole batch
N_SPARSITY = 128  # examples per split for the sparsity diagnostic


@dataclass
class SpecificityCircuit:
    """What the cross-task specificity step needs of a task's circuit: its nodes, and its task's node sites, ablation
    statistics and test prompts."""

    sites: list[NodeSite]
    stats: NodeStatistics
    kept: dict[str, torch.Tensor]
    test: PromptBatches


@dataclass
class TaskCircuit(SpecificityCircuit):
    """What the later stages need of a task's circuit: specificity, and reuse across regimes (which also needs the node
    order, the test examples and the search's size)."""

    order: NodeOrder
    test_examples: list[Example]
    n_search: int


def measure_coherence(adapter: ModelAdapter, task: Task, full_test: list[float], config: RunConfig, *, n_search: int = N_SEARCH,
                      target: float = DEFAULT_TARGET, steps: int = DEFAULT_STEPS, progress: bool = False,
                      clock: Stopwatch | None = None) -> tuple[CircuitSection, StressSection | None, dict[str, dict[str, SparsityAxis]], TaskCircuit]:
    """The task's circuit section, stress curves and sparsity diagnostic; ``full_test`` is the
    behaviour test split's logit differences (the same ``config.n_test`` examples, seed ``config.seed``), the
    full model's side of faithfulness, not recomputed. The search (``steps`` on ``n_search`` train prompts, bisected
    to ``target`` on the next ``n_search``) runs ``config.restarts`` times; the smallest restart is the circuit every
    later measurement uses, and each restart's faithfulness and curve go into the section for C's interval. Nodes
    outside a circuit take their ``config.ablation`` mean (:data:`~fracbench.config.ABLATIONS`); ``clock`` collects
    each stage's seconds."""
    clock = clock if clock is not None else Stopwatch()
    n_test, seed, batch_size, ablation = config.n_test, config.seed, config.batch_size, check_ablation(config.ablation)
    settings = SearchSettings(target=target, steps=steps, seed=seed, restarts=config.restarts, ranking=config.ranking)
    if len(full_test) != n_test:
        raise ValueError(f"full_test has {len(full_test)} logit differences for n_test = {n_test} test examples")
    sites = node_sites(adapter)
    train = task.examples("train", 2 * n_search, seed)
    search = PromptBatches.build(adapter, task, train[:n_search], SEARCH_BATCH)
    held_out = PromptBatches.build(adapter, task, train[n_search:], batch_size)  # the bisection's prompts
    with clock("circuit_search"):
        stats = node_statistics(adapter, search, sites, ablation)
        order = node_order(adapter, sites, stats.means, stats.stds)
        found = search_circuits(adapter, sites, search, stats.values, settings, held_out=held_out, order=order, progress=progress,
                                desc=f"{task.name} circuit")
    reported = smallest_restart([c.n_kept for c in found])
    circuit = found[reported]
    kept = circuit.kept
    test_examples = task.examples("test", n_test, seed)
    test = PromptBatches.build(adapter, task, test_examples, batch_size)
    nothing = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool, device=adapter.device) for s in sites}

    def under(batches: PromptBatches, keep: Mapping[str, torch.Tensor]) -> list[float]:
        return recorded(ablated_logit_diffs(adapter, batches, sites, keep, stats.values))

    full = torch.tensor(full_test, dtype=torch.float64)
    with clock("circuit_faithfulness"):
        measured = measure_conditions(adapter, sites, test, stats.values, kept, full=full)
        conditions = CircuitConditions(empty=recorded(measured.empty), circuit=recorded(measured.circuit), complement=recorded(measured.complement))
        curve, searched = None, []
        if circuit.search_sufficiency is not None:
            grid = faithfulness_curves(adapter, sites, test, stats.values, circuit.scores, order, circuit.n_kept, seed, full=full)
            curve = FaithfulnessCurve(sizes=grid.sizes, learned=[recorded(r) for r in grid.learned], random=[recorded(r) for r in grid.random],
                                      random_complement=[recorded(r) for r in grid.random_complement])
            searched = [restart_section(conditions, curve, _kept_lists(kept), circuit.n_kept, circuit.search_sufficiency) if r == reported else
                        measure_restart(adapter, sites, test, stats, c, order, curve.sizes, full, measured.empty)
                        for r, c in enumerate(tqdm(found, desc=f"{task.name} restarts", disable=not progress, leave=False))]
    control = None
    if circuit.search_sufficiency is not None:
        with clock("control"):
            measured_control = measure_control(adapter, task, sites, stats.values, order, train[:n_search], test_examples, test,
                                               circuit.n_kept, curve.sizes, settings, search_batch=SEARCH_BATCH, progress=progress,
                                               full=full)
            if measured_control is not None:
                control = ControlCircuit(flip=measured_control.flip, circuit=recorded(measured_control.circuit),
                                         learned=[recorded(r) for r in measured_control.learned])
    ood = {}
    with clock("circuit_ood"):
        for split in tqdm([s for s in task.splits() if s.is_ood], desc=f"{task.name} OOD circuits", disable=not progress, leave=False):
            batches = PromptBatches.build(adapter, task, task.examples(split.name, n_test, seed), batch_size)
            empty = under(batches, nothing)  # an empty circuit ablates the same nodes: the same numbers, not recomputed
            ood[split.name] = OODCircuit(empty=empty, circuit=empty if circuit.n_kept == 0 else under(batches, kept))
    section = CircuitSection(
        target=target, steps=steps, penalty=DEFAULT_PENALTY, seed=seed, n_search_examples=n_search, ablation=ablation,
        node_sites={s.name: s.n_nodes for s in sites},
        kept=_kept_lists(kept),
        n_nodes=circuit.n_kept, n_edges=count_edges(adapter, kept), edge_slots=edge_slots(adapter),
        search_sufficiency=circuit.search_sufficiency, test=conditions, ood=ood, curve=curve,
        restarts=searched, reported=reported if searched else None, control=control,
    )
    with clock("stress"):
        curves = None if circuit.search_sufficiency is None else measure_stress(adapter, task, sites, stats, order, kept, test, config,
                                                                                  progress)
    with clock("sparsity"):
        sparsity = measure_sparsity(adapter, task, config, progress)
    return section, curves, sparsity, TaskCircuit(sites, stats, kept, test, order, test_examples, n_search)


def measure_reuse(adapter: ModelAdapter, task: Task, found: TaskCircuit, section: CircuitSection, usable: list[str], config: RunConfig,
                  *, steps: int = DEFAULT_STEPS, progress: bool = False) -> RegimeSection:
    """The regime circuits of ``task`` (docs/metrics.md, "Mechanism reuse across regimes"), beside the reported circuit
    ``section`` describes; ``usable`` names the OOD splits where the model keeps its behaviour and the latents decode
    (scoring's rule, applied by the caller to what the run measured)."""
    reported = ReportedCircuit(found.kept, section.search_sufficiency, torch.tensor(section.test.circuit, dtype=torch.float64),
                               {split: torch.tensor(c.circuit, dtype=torch.float64) for split, c in section.ood.items()})
    measured = measure_regimes(adapter, task, found.sites, found.stats.values, found.order, reported, found.test_examples, found.test,
                               usable, config, n_search=found.n_search, search_batch=SEARCH_BATCH, steps=steps, progress=progress)

    def listed(x: torch.Tensor | None) -> list[float] | None:
        return None if x is None else recorded(x)

    circuits = {name: RegimeCircuit(kept=_kept_lists(c.kept), n_nodes=c.n_nodes, search_sufficiency=c.search_sufficiency,
                                    test=listed(c.test), ood=listed(c.ood), random_test=[recorded(r) for r in c.random_test],
                                    random_ood=[recorded(r) for r in c.random_ood])
                for name, c in measured.circuits.items()}
    circuits["id"] = circuits["id"].model_copy(update={"test": section.test.circuit})  # the same numbers, bit for bit
    return RegimeSection(short_chars=SHORT_PROMPT_CHARS, short=measured.short, ood_prompts=measured.ood_prompts, circuits=circuits)


def _kept_lists(kept: Mapping[str, torch.Tensor]) -> dict[str, list[int]]:
    return {name: k.nonzero().squeeze(1).tolist() for name, k in kept.items() if bool(k.any())}


def restart_section(conditions: CircuitConditions, curve: FaithfulnessCurve, kept: dict[str, list[int]], n_nodes: int,
                    search_sufficiency: float) -> SearchRestart:
    """The reported restart's entry, from what was measured for the reported circuit."""
    return SearchRestart(kept=kept, n_nodes=n_nodes, search_sufficiency=search_sufficiency, circuit=conditions.circuit,
                         complement=conditions.complement, learned=curve.learned)


def measure_restart(adapter: ModelAdapter, sites: list[NodeSite], test: PromptBatches, stats: NodeStatistics, circuit: Circuit,
                    order: NodeOrder, sizes: list[int], full: torch.Tensor, empty: torch.Tensor) -> SearchRestart:
    """Another restart's circuit on the test prompts: alone, ablated, and its ranking's curve at the reported sizes."""
    measured = measure_conditions(adapter, sites, test, stats.values, circuit.kept, full=full, empty=empty)
    learned = ranking_curve(adapter, sites, test, stats.values, learned_ranking(sites, circuit.scores, order), sizes, full)
    return SearchRestart(kept=_kept_lists(circuit.kept), n_nodes=circuit.n_kept, search_sufficiency=circuit.search_sufficiency,
                         circuit=recorded(measured.circuit), complement=recorded(measured.complement), learned=[recorded(r) for r in learned])


def measure_stress(adapter: ModelAdapter, task: Task, sites: list[NodeSite], stats: NodeStatistics, order: NodeOrder,
                   kept: dict[str, torch.Tensor], test: PromptBatches, config: RunConfig, progress: bool = False) -> StressSection:
    """The four stress curves of the model and of the circuit ``kept`` on the ``test`` prompts (distractors draws its
    own ``config.n_test`` prompts)."""
    n_test, seed, batch_size = config.n_test, config.seed, config.batch_size

    def curve(points: list[stress.CurvePoint] | None) -> Curve | None:
        if points is None:
            return None
        return Curve(levels=[p.level for p in points], model=[recorded(p.model) for p in points], circuit=[recorded(p.circuit) for p in points])

    bar = tqdm(total=4, desc=f"{task.name} stress", disable=not progress, leave=False)
    out = {}
    for kind, run in (
        ("activation_noise", lambda: stress.activation_noise(adapter, sites, test, stats, kept, seed, order)),
        ("dropout", lambda: stress.dropout(adapter, sites, test, stats, kept, seed, order)),
        ("weight_noise", lambda: stress.weight_noise(adapter, sites, test, stats, kept, seed, order)),
        ("distractors", lambda: stress.distractors(adapter, task, sites, stats, kept, n_test, seed, batch_size)),
    ):
        out[kind] = curve(run())
        bar.update()
    bar.close()
    return StressSection(seed=seed, **out)


def measure_sparsity(adapter: ModelAdapter, task: Task, config: RunConfig, progress: bool = False) -> dict[str, dict[str, SparsityAxis]]:
    """Activation sparsity at the residual stream after each block, test split then every OOD level."""
    sites = [s for s in default_sites(adapter) if s.endswith("hook_resid_post")]
    raw = sparsity_by_severity(adapter, task, sites, max(2, min(config.n_test, N_SPARSITY)), config.seed, config.batch_size, progress)
    return {
        site: {axis: SparsityAxis(levels=a.levels, stats=[SparsityPoint(**vars(s)) for s in a.stats], slopes=a.slopes)
               for axis, a in axes.items()}
        for site, axes in raw.items()
    }


def specificity_circuit(adapter: ModelAdapter, task: Task, kept: dict[str, torch.Tensor], stats: NodeStatistics,
                        config: RunConfig) -> SpecificityCircuit:
    """A task's circuit for specificity from its kept nodes and ablation statistics alone (a finished job read back):
    the test prompts are drawn and batched as :func:`measure_coherence` drew and batched them."""
    test = PromptBatches.build(adapter, task, task.examples("test", config.n_test, config.seed), config.batch_size)
    return SpecificityCircuit(node_sites(adapter), stats, kept, test)


def measure_specificity(adapter: ModelAdapter, circuits: Mapping[str, SpecificityCircuit], progress: bool = False) -> dict[str, dict[str, list[float]]] | None:
    """Each task's circuit mean-ablated on every other task's test prompts (with that task's means)."""
    if len(circuits) < 2:
        return None
    out: dict[str, dict[str, list[float]]] = {}
    pairs = [(a, b) for a in circuits for b in circuits if a != b]
    for a, b in tqdm(pairs, desc="specificity", disable=not progress, leave=False):
        other = circuits[b]
        complement = {name: ~k for name, k in circuits[a].kept.items()}
        diffs = ablated_logit_diffs(adapter, other.test, other.sites, complement, other.stats.values)
        out.setdefault(a, {})[b] = recorded(diffs)
    return out
