"""Mean ablation of nodes, and the task metric under it.

A node that is not kept is replaced by its mean over the task's training distribution
(every real token of every prompt), as Gao et al. prune: the rest of the network then
sees an input-independent value where the node was. ``keep`` maps each node site to a
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
    """Each node site's mean and standard deviation [*shape] over every real token of the prompts:
    the value ablated nodes take, and the scale activation noise is measured in."""

    means: dict[str, torch.Tensor]
    stds: dict[str, torch.Tensor]


@torch.no_grad()
def node_statistics(adapter: ModelAdapter, batches: PromptBatches, sites: Sequence[NodeSite]) -> NodeStatistics:
    """Means and standard deviations of every node site (float64 sums, over all real tokens)."""
    names = [s.name for s in sites]
    sums = {s.name: torch.zeros(s.shape, dtype=torch.float64, device=adapter.device) for s in sites}
    squares = {s.name: torch.zeros(s.shape, dtype=torch.float64, device=adapter.device) for s in sites}
    count = 0
    for enc, *_ in batches.batches:
        acts = adapter.forward(enc, capture=names).activations
        real = enc.attention_mask.bool()
        for name in names:
            rows = acts[name][real].double()
            sums[name] += rows.sum(0)
            squares[name] += rows.square().sum(0)
        count += int(real.sum())
    means = {name: total / count for name, total in sums.items()}
    stds = {name: (squares[name] / count - means[name].square()).clamp_min(0).sqrt().float() for name in names}
    return NodeStatistics({name: m.float() for name, m in means.items()}, stds)


def ablation_interventions(sites: Sequence[NodeSite], keep: NodeValues, means: Mapping[str, torch.Tensor],
                           edit: NodeEdit | None = None) -> dict[str, Intervention]:
    """Interventions that mean-ablate every node whose ``keep`` is 0; ``edit`` (noise, say)
    acts on the kept activations first. Sites absent from ``keep`` are left alone."""
    out: dict[str, Intervention] = {}
    for site in sites:
        if site.name not in keep and edit is None:
            continue

        def intervene(x: torch.Tensor, site: NodeSite = site) -> torch.Tensor:
            nodes = site.per_node(x)  # [B, T, n_nodes, group]
            if edit is not None:
                nodes = edit(site, nodes)
            if site.name in keep:
                mean, k = site.per_node(means[site.name]).to(nodes.dtype), keep[site.name]
                k = k[:, None] if k.dim() == 1 else k[:, None, :, None]  # [n_nodes] for every row, or [B, n_nodes] per row
                # a boolean mask selects (kept nodes pass bit for bit); the search's 0/1 floats blend, carrying gradients
                nodes = torch.where(k, nodes, mean) if k.dtype == torch.bool else mean + k.to(nodes.dtype) * (nodes - mean)
            return nodes.reshape(x.shape)

        out[site.name] = intervene
    return out


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
