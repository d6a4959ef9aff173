"""Circuit search (Gao et al., arXiv:2511.13653): learn one mask parameter per node, then
bisect on the number of kept nodes to reach a faithfulness target.

Each node has a score ``s``; the forward keeps it when ``s > 0`` (a Heaviside step) and
mean-ablates it otherwise; the backward uses the sigmoid's derivative in place of the
step's (a straight-through surrogate). The loss is ``(1 - sufficiency)²`` on the batch (the
circuit alone should reproduce the full model's logit difference, neither less nor more)
plus ``penalty`` x the number of nodes kept. (Scores version 2 used ``|1 - sufficiency|``,
whose gradient flips sign at the target on float rounding: a permuted twin, logits within
3e-5, ended with 153 of 3,168 nodes on the other side; with the square, none.) Scores start at 0.1 plus seeded noise of
0.01 (Gao et al.'s initialization) and are trained with Adam. The learned scores then rank
the nodes, and bisection finds the fewest top-ranked nodes whose circuit alone recovers
``target`` of the full model's logit difference (sufficiency, :mod:`.faithfulness`) on
held-out train prompts. The search is restarted (:func:`search_circuits`): every restart meets
the target, so the circuit that is reported is the smallest restart (:func:`fracbench.results.smallest_restart`,
scores version 5), and the others measure how much the search itself varies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..config import DEFAULT_RANKING, check_ranking
from ..models.adapter import ModelAdapter
from .ablation import (AblationValues, PromptBatches, ablated_logit_diffs, ablation_interventions, batch_values,
                       last_token_logit_diffs, logit_diffs_under)
from .attribution import EAP_IG_STEPS, attribution_scores
from .faithfulness import MIN_EFFECT, normalized
from .curves import learned_ranking, top
from .keys import NodeOrder, node_order
from .nodes import NodeSite, total_nodes

DEFAULT_TARGET = 0.9  # the circuit alone must recover 90% of the full model's logit difference
DEFAULT_STEPS = 200  # optimizer steps of the mask search
DEFAULT_PENALTY = 1e-3  # loss per kept node
LEARNING_RATE = 0.01  # Adam (betas 0.9, 0.95), on the node scores
INITIAL_SCORE, INITIAL_NOISE = 0.1, 0.01  # every node starts kept, ties broken by seeded noise
INITIALS = ("constant", "eap-ig")  # where the scores start: all at INITIAL_SCORE, or spread by EAP-IG rank (measured, not default)


class _Heaviside(torch.autograd.Function):
    """1 where the score is positive, else 0; gradient sigmoid'(score) (the surrogate)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scores)
        return (scores > 0).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (scores,) = ctx.saved_tensors
        s = torch.sigmoid(scores)
        return grad * s * (1 - s)


@dataclass
class Circuit:
    """The nodes kept (``kept``: site -> bool [n_nodes]) and how they were found."""

    kept: dict[str, torch.Tensor]
    scores: dict[str, torch.Tensor]  # the learned node scores: the ranking bisection cut
    target: float
    search_sufficiency: float | None  # sufficiency on the search prompts at the chosen size; None: the model
    # shows no behaviour beyond the all-ablated model (MIN_EFFECT), so no search ran and no node is kept
    n_total: int

    @property
    def n_kept(self) -> int:
        return int(sum(int(k.sum()) for k in self.kept.values()))

    @property
    def fraction(self) -> float:
        return self.n_kept / self.n_total


@dataclass(frozen=True)
class SearchSettings:
    """How the mask search runs: the sufficiency ``target`` the bisection meets, the optimizer's ``steps``, the
    ``penalty`` per kept node, the ``seed`` of the initial noise and the number of ``restarts``. ``ranking`` "eap-ig"
    ranks the nodes by EAP-IG attributions (:data:`EAP_IG_STEPS` points) instead of learning masks: steps, penalty
    and seed are then unused, and there is one ranking. ``initial`` "eap-ig" starts the mask search's scores spread
    by the nodes' EAP-IG ranks instead of all at :data:`INITIAL_SCORE` (:func:`_initial_scores`; an experiment,
    docs/metrics.md, "An EAP-IG-initialized search")."""

    target: float = DEFAULT_TARGET
    steps: int = DEFAULT_STEPS
    penalty: float = DEFAULT_PENALTY
    seed: int = 0
    restarts: int = 1
    ranking: str = DEFAULT_RANKING
    initial: str = "constant"

    def __post_init__(self) -> None:
        check_ranking(self.ranking)
        if self.initial not in INITIALS:
            raise ValueError(f"unknown initial scores {self.initial!r}; use one of {', '.join(INITIALS)}")
        if self.initial != "constant" and self.ranking != "masks":
            raise ValueError(f"initial {self.initial!r} starts the learned masks; ranking {self.ranking!r} learns none")
        if self.ranking == "eap-ig" and self.restarts != 1:
            raise ValueError(f"ranking eap-ig is deterministic: {self.restarts} restarts would be one ranking; give restarts=1")
        if not 0 < self.target <= 1:
            raise ValueError(f"target (the circuit's sufficiency) must be in (0, 1], got {self.target}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts}")


def search_circuits(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, means: AblationValues,
                    settings: SearchSettings = SearchSettings(), *, held_out: PromptBatches | None = None,
                    order: NodeOrder | None = None, progress: bool = False, desc: str = "circuit") -> list[Circuit]:
    """``settings.restarts`` independent searches, each the smallest top-ranked node set whose circuit reaches the
    target sufficiency. The masks are learned on ``batches``; the bisection measures sufficiency on ``held_out``
    prompts (default: ``batches``), so that the target is met on prompts the ranking was not fitted to. ``order``
    (default: from the adapter's weights) keys the initial noise and the ranking's ties to the nodes, not their
    indices.

    The restarts are the same search from different initial noise, on the same prompts in the same order: each
    step stacks the batch once per restart into one forward pass, each copy ablated with its own restart's mask
    (the optimizer is elementwise, so the restarts do not interact). Dealing a batch's rows out among the
    restarts instead would cost one search, but on 13 prompts a step the search failed far more often (dense
    set_or_string: 4 of 5 restarts at 2,701-3,037 nodes, where 5 of 5 seeds at 64 prompts found 414-753).
    """
    order = order if order is not None else node_order(adapter, sites, means)
    scores = learn_scores(adapter, sites, batches, means, settings, order=order, progress=progress, desc=desc)
    n_total, target = total_nodes(list(sites)), settings.target
    if scores is None:  # no behaviour beyond the all-ablated model: nothing to search for
        none = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool, device=adapter.device) for s in sites}
        initial = _initial_scores(adapter, sites, settings.seed, settings.restarts, order)
        return [Circuit(dict(none), {name: s[r] for name, s in initial.items()}, target, None, n_total) for r in range(settings.restarts)]
    bisect_on = held_out or batches
    full_mean = float(logit_diffs_under(adapter, bisect_on).mean())
    empty_mean = float(ablated_logit_diffs(adapter, bisect_on, sites, _nothing(adapter, sites), means).mean())
    return [_bisect(adapter, sites, bisect_on, means, ranking, order, target, (full_mean, empty_mean))
            for ranking in tqdm(scores, desc=f"{desc} bisection", disable=not progress, leave=False)]


def learn_scores(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, means: AblationValues,
                 settings: SearchSettings = SearchSettings(), *, order: NodeOrder | None = None, spans: Sequence[float] | None = None,
                 progress: bool = False, desc: str = "circuit") -> list[dict[str, torch.Tensor]] | None:
    """The mask search without its bisection (``settings.target`` unused): per restart, the learned node scores
    (site -> [n_nodes]), which rank the nodes. Each batch's sufficiency is normalized by the full model's mean logit
    difference minus the all-ablated model's on that batch, or by ``spans`` (one per batch) when given: the circuit
    control task's labels have no behaviour of their own, so its search is asked for the real task's span. None when
    the span (its mean over the batches) is below ``MIN_EFFECT``: no behaviour to search for. With ``settings.ranking``
    "eap-ig", one ranking: each node's EAP-IG attribution on ``batches`` (:func:`.attribution.attribution_scores`)."""
    if spans is not None and len(spans) != len(batches.batches):
        raise ValueError(f"spans: one per batch ({len(batches.batches)}), got {len(spans)}")
    restarts = settings.restarts
    order = order if order is not None else node_order(adapter, sites, means)
    # the all-ablated model's logit differences per batch, and the span that normalizes every step: computed once
    empty = _per_batch(batches, ablated_logit_diffs(adapter, batches, sites, _nothing(adapter, sites), means), adapter.device)
    if spans is None:
        spans = batch_spans(adapter, sites, batches, means, empty)
    sizes = [len(idx) for *_, idx in batches.batches]
    if sum(span * n for span, n in zip(spans, sizes)) / sum(sizes) < MIN_EFFECT:
        return None
    if settings.ranking == "eap-ig":  # the attributions rank the nodes: the path from the all-ablated model, no learning
        attributions = attribution_scores(adapter, sites, batches, means, steps=EAP_IG_STEPS, progress=progress)
        return [{name: a.to(adapter.device) for name, a in attributions.items()}]
    ranks = None
    if settings.initial == "eap-ig":
        ranks = average_ranks(attribution_scores(adapter, sites, batches, means, steps=EAP_IG_STEPS, progress=progress))
    initial = _initial_scores(adapter, sites, settings.seed, restarts, order, ranks)
    scores = {name: s.requires_grad_() for name, s in initial.items()}  # [R, n_nodes]
    optimizer = torch.optim.Adam(scores.values(), lr=LEARNING_RATE, betas=(0.9, 0.95))
    for step in tqdm(range(settings.steps), desc=desc, disable=not progress, leave=False):
        b = step % len(batches.batches)
        enc, targets, foils, _ = batches.batches[b]
        n = len(targets)
        owner = torch.arange(restarts, device=adapter.device).repeat_interleave(n)  # [R B]: copy r of the batch is restart r's
        masks = {name: _Heaviside.apply(s) for name, s in scores.items()}  # [R, n_nodes]
        keep = {name: m[owner] for name, m in masks.items()}  # [R B, n_nodes]: each row its restart's mask
        stacked = enc.repeat(restarts)
        interventions = ablation_interventions(sites, keep, batch_values(adapter, batches, b, sites, means), last_index=stacked.last_index)
        diffs = last_token_logit_diffs(adapter, stacked, targets.repeat(restarts), foils.repeat(restarts), interventions,
                                       last_only=True).view(restarts, n)
        sufficiency = (diffs.mean(dim=1) - empty[b].mean()) / max(spans[b], 1e-6)  # [R]
        loss = (1 - sufficiency).square().sum() + settings.penalty * sum(m.sum() for m in masks.values())  # every restart's kept nodes
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [{name: s[r].detach() for name, s in scores.items()} for r in range(restarts)]


def batch_spans(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, means: AblationValues,
                empty: list[torch.Tensor] | None = None) -> list[float]:
    """Per batch, the full model's mean logit difference minus the all-ablated model's (``empty``, per batch, when
    already computed): what the search's sufficiency is normalized by."""
    if empty is None:
        empty = _per_batch(batches, ablated_logit_diffs(adapter, batches, sites, _nothing(adapter, sites), means), adapter.device)
    full = _per_batch(batches, logit_diffs_under(adapter, batches), adapter.device)
    return [float(f.mean() - e.mean()) for f, e in zip(full, empty)]


def _nothing(adapter: ModelAdapter, sites: Sequence[NodeSite]) -> dict[str, torch.Tensor]:
    return {s.name: torch.zeros(s.n_nodes, device=adapter.device) for s in sites}


def _initial_scores(adapter: ModelAdapter, sites: Sequence[NodeSite], seed: int, restarts: int, order: NodeOrder,
                    ranks: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Site -> [R, n_nodes]: 0.1 plus seeded noise drawn in key order, one row per restart. With ``ranks`` (site ->
    [n_nodes], 1..n over every node), 0.1 x (0.5 + rank / (n + 1)) in place of 0.1: the same mean, from 0.05 (five
    times the noise's standard deviation: every node still kept) for the lowest-ranked node to 0.15 for the highest."""
    generator = torch.Generator().manual_seed(seed)
    n = total_nodes(list(sites))
    start = {s.name: INITIAL_SCORE if ranks is None else INITIAL_SCORE * (0.5 + ranks[s.name].float() / (n + 1)) for s in sites}
    return {s.name: torch.stack([start[s.name] + INITIAL_NOISE * order.per_node(s.name, torch.randn(s.n_nodes, generator=generator))
                                 for _ in range(restarts)]).to(adapter.device) for s in sites}


def average_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Site -> [n_nodes] ranks 1..n of every node's value across all sites, ascending; tied values share their mean
    rank, so the ranks do not depend on the nodes' indices."""
    names = list(values)
    flat = torch.cat([values[name].reshape(-1).double().cpu() for name in names])
    _, inverse, counts = torch.unique(flat, return_inverse=True, return_counts=True)  # sorted unique values
    upto = torch.cumsum(counts, 0).double()
    mean_rank = upto - (counts.double() - 1) / 2  # ranks first..last of each group of ties, averaged
    ranks, start = mean_rank[inverse], 0
    out = {}
    for name in names:
        size = values[name].numel()
        out[name] = ranks[start:start + size].reshape(values[name].shape)
        start += size
    return out


def search_circuit(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, means: AblationValues,
                   settings: SearchSettings = SearchSettings(), **where) -> Circuit:
    """One search (:func:`search_circuits` with one restart; ``where``: its keyword arguments)."""
    return search_circuits(adapter, sites, batches, means, dataclasses.replace(settings, restarts=1), **where)[0]


def median_restart(circuits: Sequence[Circuit]) -> int:
    """The index of the restart with the median number of nodes (the lower median for an even count; ties by index):
    the reported circuit of scores versions 3 and 4, kept for the experiments whose recorded decisions used it."""
    ranked = sorted(range(len(circuits)), key=lambda r: (circuits[r].n_kept, r))
    return ranked[(len(ranked) - 1) // 2]


def _per_batch(batches: PromptBatches, per_example: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """Per-example values split into the batches' rows."""
    return [per_example[idx].float().to(device) for _, _, _, idx in batches.batches]


def _bisect(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, means: AblationValues,
            ranking: dict[str, torch.Tensor], nodes: NodeOrder, target: float, span: tuple[float, float]) -> Circuit:
    """Bisection on k, the number of top-ranked nodes kept (ties broken by the nodes' keys);
    ``span`` holds the mean logit differences of the full and the all-ablated model."""
    order = learned_ranking(sites, ranking, nodes)
    full, empty = span
    n_total = total_nodes(list(sites))

    def keep_top(k: int) -> dict[str, torch.Tensor]:
        return top(sites, order, k, adapter.device)

    def sufficiency(k: int) -> float:
        circuit = float(ablated_logit_diffs(adapter, batches, sites, keep_top(k), means).mean())
        return normalized(circuit, empty, full)

    # Sufficiency is not monotone in k once nodes the search removed come back (adding them can
    # hurt): a bisection over all of 0..n_total was seen to return 2,000+ nodes where the learned
    # set had 400. So the upper end is the learned set when it reaches the target, else the first
    # of learned + 5%, + 10%, + 20%, + 40%, ... of the nodes (in rank order) that does (the gaps
    # double: each restart is bisected, and a fixed 5% step took ~25 evaluations); bisection runs
    # below it, to a resolution of 0.1% of the nodes.
    learned = int(sum(int((r > 0).sum()) for r in ranking.values()))
    chunk, resolution = max(1, n_total // 20), max(1, n_total // 1000)
    lo, hi = 0, min(max(learned, 1), n_total)  # k = 0 is the all-ablated model: sufficiency 0, below any target
    at_hi = sufficiency(hi)
    while at_hi < target and hi < n_total:
        lo, hi, chunk = hi, min(hi + chunk, n_total), 2 * chunk
        at_hi = sufficiency(hi) if hi < n_total else 1.0
    while hi - lo > resolution:  # invariant: k = hi reaches the target, k = lo does not
        mid = (lo + hi) // 2
        value = sufficiency(mid)
        if value >= target:
            hi, at_hi = mid, value
        else:
            lo = mid
    return Circuit(keep_top(hi), ranking, target, at_hi, n_total)
