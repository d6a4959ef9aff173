"""Ablation of nodes, and the task metric under it.

A node that is not kept is replaced by a value that no longer depends on the input, as Gao et
al. prune: by default its mean over every position of the task's training prompts (``mean``), or
its mean at the same token position (``positional_mean``). Padding never counts, and a special
token (BOS) only counts at its own position, never in the pooled mean (docs/metrics.md, "Ablation"). ``keep`` maps each node site to a
[n_nodes] tensor, 1 (or True) for nodes left alone; values in between blend (the circuit
search's surrogate gradients flow through them). A [B, n_nodes] tensor gives each prompt of the
batch its own mask (the search's restarts share one forward pass that way).

``resample`` (measured by ``experiments/ablation_choice.py``, not a ``fracbench run`` option) gives an
ablated node its activation on the prompt's counterfactual instead (:mod:`.counterfactual`): the
prompt batches then carry those prompts, and :func:`ablated_logit_diffs` takes each batch's own values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..behaviour import completion_ids
from ..config import DEFAULT_ABLATION, RESAMPLE, check_ablation
from ..models.adapter import Encoding, Intervention, ModelAdapter
from ..tasks import Example, Task
from .nodes import NodeSite

NodeValues = Mapping[str, torch.Tensor]  # node site -> [n_nodes]
# A position seen in fewer search prompts than this takes the pooled mean: the mean of n prompts varies by
# 1/sqrt(n) of the node's spread, 1/4 at 16, and a mean over a handful of prompts is their activation, not an ablation
MIN_POSITION_COUNT = 16
NodeEdit = Callable[[NodeSite, torch.Tensor], torch.Tensor]  # (site, [B, T, n_nodes, group]) -> same shape


@dataclass
class PromptBatches:
    """A task's prompts tokenized once, in length-sorted batches, with target and foil ids:
    every evaluation of a circuit (bisection, stress sweeps, OOD levels) reuses them. With
    ``counterfactuals`` (resample ablation), each batch also holds its prompts' counterfactuals,
    token for token as long, and which rows have one (``matched``)."""

    batches: list[tuple[Encoding, torch.Tensor, torch.Tensor, torch.Tensor]]  # (encoding, targets, foils, example index)
    n: int
    counterfactuals: list[tuple[Encoding, torch.Tensor]] | None = None  # per batch: (encoding, matched [B] bool)
    _resampled: dict[tuple, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)  # (batch, sites) -> activations

    @classmethod
    def build(cls, adapter: ModelAdapter, task: Task, examples: Sequence[Example], batch_size: int = 64,
              counterfactuals: Sequence[Example | None] | None = None) -> PromptBatches:
        if not examples:
            raise ValueError(f"task {task.name!r}: no examples to evaluate a circuit on")
        if counterfactuals is not None and len(counterfactuals) != len(examples):
            raise ValueError(f"{len(counterfactuals)} counterfactuals for {len(examples)} examples: one each (None for none)")
        targets, foils = completion_ids(adapter, task, examples)
        order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt))
        batches, paired = [], []
        for start in range(0, len(order), batch_size):
            idx = torch.tensor(order[start : start + batch_size])
            enc = adapter.encode([examples[i].prompt for i in idx.tolist()])
            batches.append((enc, targets[idx].to(adapter.device), foils[idx].to(adapter.device), idx))
            if counterfactuals is not None:
                rows = [counterfactuals[i] for i in idx.tolist()]
                # a row without a counterfactual runs its own prompt there, and takes the pooled mean
                cf = adapter.encode([x.prompt if x is not None else examples[i].prompt for x, i in zip(rows, idx.tolist())])
                if not torch.equal(cf.attention_mask, enc.attention_mask):
                    raise ValueError(f"task {task.name!r}: a counterfactual has another number of tokens than its prompt")
                paired.append((cf, torch.tensor([x is not None for x in rows], device=adapter.device)))
        return cls(batches, len(examples), paired if counterfactuals is not None else None)

    @torch.no_grad()
    def resampled(self, adapter: ModelAdapter, sites: Sequence[NodeSite], b: int,
                  pooled: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batch ``b``'s ablation values under resample ablation, [B, T, *shape] per site: each prompt's
        counterfactual activations, the pooled mean for a prompt without one (computed once, then cached)."""
        if self.counterfactuals is None:
            raise ValueError("resample ablation needs prompt batches built with counterfactuals "
                             "(PromptBatches.build(..., counterfactuals=counterfactual_examples(...)))")
        key = (b, tuple(s.name for s in sites))
        if key not in self._resampled:
            enc, matched = self.counterfactuals[b]
            acts = adapter.forward(enc, capture=[s.name for s in sites]).activations
            rows = lambda a: matched.reshape(-1, *[1] * (a.dim() - 1))  # noqa: E731
            self._resampled[key] = {s.name: torch.where(rows(acts[s.name]), acts[s.name], pooled[s.name].to(acts[s.name].dtype))
                                    for s in sites}
        return self._resampled[key]


@dataclass
class NodeStatistics:
    """Each node site's mean and standard deviation [*shape] over the prompts' text tokens (the scale
    activation noise is measured in, and what nodes are keyed by), its mean at each token position
    [n_positions + 1, *shape] (the last row, the pooled mean, for positions past the longest prompt),
    and which of the two ablated nodes take (``ablation``)."""

    means: dict[str, torch.Tensor]
    stds: dict[str, torch.Tensor]
    position_means: dict[str, torch.Tensor]
    ablation: str = DEFAULT_ABLATION

    @property
    def values(self) -> AblationValues:
        """What an ablated node takes: [n_positions + 1, *shape] per position, the pooled [*shape], or (resample)
        each prompt's counterfactual activations, which the prompt batches hold."""
        if self.ablation == RESAMPLE:
            return Resample(self.means)
        return self.position_means if self.ablation == "positional_mean" else self.means


@dataclass(frozen=True)
class Resample:
    """Resample ablation's values: the counterfactual activations of whichever batch runs
    (:meth:`PromptBatches.resampled`), ``pooled`` for a prompt without a counterfactual."""

    pooled: Mapping[str, torch.Tensor]


AblationValues = Mapping[str, torch.Tensor] | Resample


@torch.no_grad()
def node_statistics(adapter: ModelAdapter, batches: PromptBatches, sites: Sequence[NodeSite],
                    ablation: str = DEFAULT_ABLATION) -> NodeStatistics:
    """Pooled means and standard deviations over text tokens, and means per position over every
    unpadded token (float64 sums). A position with fewer than :data:`MIN_POSITION_COUNT` prompts
    takes the pooled mean (and so does every position past the longest prompt, see
    :func:`ablation_interventions`). A special token's position (BOS at 0) keeps its own
    activation, which no input changes."""
    check_ablation(ablation, measured=True)
    names = [s.name for s in sites]
    n_positions = max(int(enc.attention_mask.shape[1]) for enc, *_ in batches.batches)
    zeros = lambda *shape: {s.name: torch.zeros(*shape, *s.shape, dtype=torch.float64, device=adapter.device) for s in sites}  # noqa: E731
    sums, squares, by_position = zeros(), zeros(), zeros(n_positions)
    count, position_count = 0, torch.zeros(n_positions, dtype=torch.float64, device=adapter.device)
    for enc, *_ in batches.batches:
        acts = adapter.forward(enc, capture=names).activations
        unpadded = enc.attention_mask.bool()
        text = unpadded & (enc.offsets[..., 1] > enc.offsets[..., 0])  # special tokens span no character
        t = unpadded.shape[1]
        position_count[:t] += unpadded.sum(0)
        for name in names:
            rows = acts[name][text].double()
            sums[name] += rows.sum(0)
            squares[name] += rows.square().sum(0)
            weights = unpadded.to(torch.float64).reshape(*unpadded.shape, *[1] * (acts[name].dim() - 2))
            by_position[name][:t] += (acts[name].double() * weights).sum(0)
        count += int(text.sum())
    means = {name: total / count for name, total in sums.items()}
    stds = {name: (squares[name] / count - means[name].square()).clamp_min(0).sqrt().float() for name in names}
    enough = position_count >= MIN_POSITION_COUNT
    positional = {}
    for name in names:
        shape = [n_positions] + [1] * (by_position[name].dim() - 1)
        per_position = by_position[name] / position_count.clamp_min(1).reshape(shape)
        table = torch.where(enough.reshape(shape), per_position, means[name])
        positional[name] = torch.cat([table, means[name][None]]).float()  # the last row: every later position
    return NodeStatistics({name: m.float() for name, m in means.items()}, stds, positional, ablation)


def ablation_interventions(sites: Sequence[NodeSite], keep: NodeValues, means: Mapping[str, torch.Tensor],
                           edit: NodeEdit | None = None, last_index: torch.Tensor | None = None) -> dict[str, Intervention]:
    """Interventions that set every node whose ``keep`` is 0 to its value in ``means`` ([*shape] at every position, or
    [n_positions + 1, *shape] per position, the last row for every later one: :attr:`NodeStatistics.values`); ``edit``
    (noise, say) acts on the kept activations first. Sites absent from ``keep`` are left alone. ``last_index`` ([B],
    each row's last token): where a site that :meth:`ModelAdapter.last_token_logits` computes at the last token
    alone ([B, 1, ...]) sits, so that it takes that position's value."""
    out: dict[str, Intervention] = {}
    for site in sites:
        if site.name not in keep and edit is None:
            continue

        def intervene(x: torch.Tensor, site: NodeSite = site) -> torch.Tensor:
            nodes = site.per_node(x)  # [B, T, n_nodes, group]
            if edit is not None:
                nodes = edit(site, nodes)
            if site.name in keep:
                mean, k = site.per_node(_at_positions(site, means[site.name], x.shape[1], last_index)).to(nodes.dtype), keep[site.name]
                if mean.dim() == 4 and len(mean) != len(nodes):  # one batch's values, the batch stacked once per restart
                    mean = mean.repeat(len(nodes) // len(mean), 1, 1, 1)
                k = k[:, None] if k.dim() == 1 else k[:, None, :, None]  # [n_nodes] for every row, or [B, n_nodes] per row
                # a boolean mask selects (kept nodes pass bit for bit); the search's 0/1 floats blend, carrying gradients:
                # lerp is exact at 0 and 1 (mean + k * (x - mean) is not at 1) and one fused pass, forward and backward
                if k.dtype == torch.bool:
                    nodes = torch.where(k, nodes, mean)
                else:
                    nodes = torch.lerp(mean.expand_as(nodes), nodes, k.to(nodes.dtype))
            return nodes.reshape(x.shape)

        out[site.name] = intervene
    return out


def _at_positions(site: NodeSite, value: torch.Tensor, n_positions: int, last_index: torch.Tensor | None = None) -> torch.Tensor:
    """A site's ablation value for a [B, T, *shape] activation: [*shape], or [T, *shape] from a per-position table
    whose last row serves every position past the others, or [B, T, *shape] per prompt (resample). A site computed
    at the last token alone (T = 1 with ``last_index``) takes each row's value at its last token, [B, 1, *shape]."""
    if value.dim() == len(site.shape):
        return value
    if n_positions == 1 and last_index is not None:
        if value.dim() == len(site.shape) + 2:  # per prompt: the batch's rows, stacked once per restart
            rows = torch.arange(len(last_index), device=value.device) % len(value)
            return value[rows, last_index][:, None]
        return value[last_index.clamp_max(len(value) - 1)][:, None]
    if value.dim() == len(site.shape) + 2:  # [B, T, *shape]: per prompt and position (resample)
        return value
    if n_positions < len(value):
        return value[:n_positions]
    return torch.cat([value[:-1], value[-1:].expand(n_positions - len(value) + 1, *value.shape[1:])])


def last_token_logit_diffs(adapter: ModelAdapter, enc: Encoding, targets: torch.Tensor, foils: torch.Tensor,
                           interventions: Mapping[str, Intervention] | None = None, last_only: bool = False) -> torch.Tensor:
    """[B] logit(target) - logit(foil) at each prompt's last token (differentiable). ``last_only``: through
    :meth:`ModelAdapter.last_token_logits`, which may compute the last block's later sites at that token alone (the
    interventions must place such sites, as :func:`ablation_interventions` does given ``last_index``)."""
    rows = torch.arange(len(targets), device=enc.ids.device)
    if last_only:
        last = adapter.last_token_logits(enc, interventions)
    else:
        last = adapter.forward(enc, interventions=interventions).logits[rows, enc.last_index]
    return last[rows, targets] - last[rows, foils]


def batch_values(adapter: ModelAdapter, batches: PromptBatches, b: int, sites: Sequence[NodeSite],
                 values: AblationValues) -> Mapping[str, torch.Tensor]:
    """What batch ``b``'s ablated nodes take: ``values`` itself, or under resample the batch's counterfactual activations."""
    return batches.resampled(adapter, sites, b, values.pooled) if isinstance(values, Resample) else values


@torch.no_grad()
def ablated_logit_diffs(adapter: ModelAdapter, batches: PromptBatches, sites: Sequence[NodeSite], keep: NodeValues,
                        values: AblationValues, edit: NodeEdit | None = None) -> torch.Tensor:
    """[N] float64 logit differences of every prompt, in example order, with the nodes ``keep`` leaves out ablated to
    ``values`` (and ``edit`` applied first: one edit serves every batch, so its random draws run on across them)."""
    out = torch.empty(batches.n, dtype=torch.float64)
    for b, (enc, targets, foils, idx) in enumerate(batches.batches):
        # an edit (noise) draws by the activation's shape: it sees the whole forward
        interventions = ablation_interventions(sites, keep, batch_values(adapter, batches, b, sites, values), edit, enc.last_index)
        out[idx] = last_token_logit_diffs(adapter, enc, targets, foils, interventions, last_only=edit is None).double().cpu()
    return out


@torch.no_grad()
def logit_diffs_under(adapter: ModelAdapter, batches: PromptBatches, interventions: Mapping[str, Intervention] | None = None,
                      progress: bool = False, desc: str = "") -> torch.Tensor:
    """[N] float64 logit differences of every prompt, in example order, under ``interventions``."""
    out = torch.empty(batches.n, dtype=torch.float64)
    for enc, targets, foils, idx in tqdm(batches.batches, desc=desc, disable=not progress, leave=False):
        out[idx] = last_token_logit_diffs(adapter, enc, targets, foils, interventions, last_only=not interventions).double().cpu()
    return out
