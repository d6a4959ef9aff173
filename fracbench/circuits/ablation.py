"""Ablation of nodes, and the task metric under it.

A node that is not kept is replaced by a value that no longer depends on the input, as Gao et
al. prune: by default its mean over every position of the task's training prompts (``mean``), or
its mean at the same token position (``positional_mean``). Padding never counts, and a special
token (BOS) only counts at its own position, never in the pooled mean (docs/metrics.md, "Ablation"). ``keep`` maps each node site to a
[n_nodes] tensor, 1 (or True) for nodes left alone; values in between blend (the circuit
search's surrogate gradients flow through them). A [B, n_nodes] tensor gives each prompt of the
batch its own mask (the search's restarts share one forward pass that way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..behaviour import completion_ids
from ..models.adapter import Encoding, Intervention, ModelAdapter
from ..tasks import Example, Task
from .nodes import NodeSite

NodeValues = Mapping[str, torch.Tensor]  # node site -> [n_nodes]
ABLATIONS = ("positional_mean", "mean")  # what an ablated node takes: its mean at the same position, or over all positions
DEFAULT_ABLATION = "mean"
# A position seen in fewer search prompts than this takes the pooled mean: the mean of n prompts varies by
# 1/sqrt(n) of the node's spread, 1/4 at 16, and a mean over a handful of prompts is their activation, not an ablation
MIN_POSITION_COUNT = 16
NodeEdit = Callable[[NodeSite, torch.Tensor], torch.Tensor]  # (site, [B, T, n_nodes, group]) -> same shape


@dataclass
class PromptBatches:
    """A task's prompts tokenized once, in length-sorted batches, with target and foil ids:
    every evaluation of a circuit (bisection, stress sweeps, OOD levels) reuses them."""

    batches: list[tuple[Encoding, torch.Tensor, torch.Tensor, torch.Tensor]]  # (encoding, targets, foils, example index)
    n: int

    @classmethod
    def build(cls, adapter: ModelAdapter, task: Task, examples: Sequence[Example], batch_size: int = 64) -> PromptBatches:
        if not examples:
            raise ValueError(f"task {task.name!r}: no examples to evaluate a circuit on")
        targets, foils = completion_ids(adapter, task, examples)
        order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt))
        batches = []
        for start in range(0, len(order), batch_size):
            idx = torch.tensor(order[start : start + batch_size])
            enc = adapter.encode([examples[i].prompt for i in idx.tolist()])
            batches.append((enc, targets[idx].to(adapter.device), foils[idx].to(adapter.device), idx))
        return cls(batches, len(examples))


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
    def values(self) -> dict[str, torch.Tensor]:
        """What an ablated node takes: [n_positions + 1, *shape] per position, or the pooled [*shape]."""
        return self.position_means if self.ablation == "positional_mean" else self.means


def check_ablation(ablation: str) -> str:
    """``ablation`` if it is one of :data:`ABLATIONS`, else a ValueError naming them."""
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {', '.join(map(repr, ABLATIONS))}, got {ablation!r}")
    return ablation


@torch.no_grad()
def node_statistics(adapter: ModelAdapter, batches: PromptBatches, sites: Sequence[NodeSite],
                    ablation: str = DEFAULT_ABLATION) -> NodeStatistics:
    """Pooled means and standard deviations over text tokens, and means per position over every
    unpadded token (float64 sums). A position with fewer than :data:`MIN_POSITION_COUNT` prompts
    takes the pooled mean (and so does every position past the longest prompt, see
    :func:`ablation_interventions`). A special token's position (BOS at 0) keeps its own
    activation, which no input changes."""
    check_ablation(ablation)
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
                           edit: NodeEdit | None = None) -> dict[str, Intervention]:
    """Interventions that set every node whose ``keep`` is 0 to its value in ``means`` ([*shape] at every position, or
    [n_positions + 1, *shape] per position, the last row for every later one: :attr:`NodeStatistics.values`); ``edit``
    (noise, say) acts on the kept activations first. Sites absent from ``keep`` are left alone."""
    out: dict[str, Intervention] = {}
    for site in sites:
        if site.name not in keep and edit is None:
            continue

        def intervene(x: torch.Tensor, site: NodeSite = site) -> torch.Tensor:
            nodes = site.per_node(x)  # [B, T, n_nodes, group]
            if edit is not None:
                nodes = edit(site, nodes)
            if site.name in keep:
                mean, k = site.per_node(_at_positions(site, means[site.name], x.shape[1])).to(nodes.dtype), keep[site.name]
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


def _at_positions(site: NodeSite, value: torch.Tensor, n_positions: int) -> torch.Tensor:
    """A site's ablation value for a [B, T, *shape] activation: [*shape], or [T, *shape] from a per-position table
    whose last row serves every position past the others."""
    if value.dim() == len(site.shape):
        return value
    if n_positions < len(value):
        return value[:n_positions]
    return torch.cat([value[:-1], value[-1:].expand(n_positions - len(value) + 1, *value.shape[1:])])


def last_token_logit_diffs(adapter: ModelAdapter, enc: Encoding, targets: torch.Tensor, foils: torch.Tensor,
                           interventions: Mapping[str, Intervention] | None = None) -> torch.Tensor:
    """[B] logit(target) - logit(foil) at each prompt's last token (differentiable)."""
    logits = adapter.forward(enc, interventions=interventions).logits
    last = logits[torch.arange(len(targets), device=logits.device), enc.last_index]
    rows = torch.arange(len(targets), device=logits.device)
    return last[rows, targets] - last[rows, foils]


@torch.no_grad()
def logit_diffs_under(adapter: ModelAdapter, batches: PromptBatches, interventions: Mapping[str, Intervention] | None = None,
                      progress: bool = False, desc: str = "") -> torch.Tensor:
    """[N] float64 logit differences of every prompt, in example order, under ``interventions``."""
    out = torch.empty(batches.n, dtype=torch.float64)
    for enc, targets, foils, idx in tqdm(batches.batches, desc=desc, disable=not progress, leave=False):
        out[idx] = last_token_logit_diffs(adapter, enc, targets, foils, interventions).double().cpu()
    return out
