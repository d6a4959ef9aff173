"""Faithfulness across circuit sizes, and the random node sets every circuit is compared with.

MIB (Mueller et al. 2025) scores a circuit-finding method by the whole faithfulness-vs-size
curve, not one circuit: the nodes are ranked, the top ``p`` of them kept for every ``p`` of a
fixed grid, and the area under the curve (CPR) and under its distance from 1 (CMD) summarize
it. fracbench draws the same curve for the learned ranking and for a random ranking of the same
nodes (the reference that makes compactness comparable across tasks), and ablates random node
sets of the circuit's size (the reference for necessity: how much of the behaviour *any* set of
that size removes). Random draws follow the node keys (:mod:`.keys`), so they are the same on a
permuted twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..models.adapter import ModelAdapter
from ..tasks.base import stable_seed
from .ablation import AblationValues, PromptBatches, ablated_logit_diffs
from .keys import NodeOrder
from .nodes import NodeSite, total_nodes

SIZE_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # MIB's shares of the nodes kept
N_RANDOM_SETS = 5  # random node sets of the circuit's size, ablated for necessity's reference


@dataclass
class FaithfulnessCurves:
    sizes: list[int]  # nodes kept at each grid point: max(1, int(share x all nodes))
    learned: list[torch.Tensor]  # per size, [N] logit differences with the learned ranking's top nodes alone
    random: list[torch.Tensor]  # the same with a random ranking
    random_complement: list[torch.Tensor]  # per random set of the circuit's size, [N] with that set ablated


def grid_sizes(n_total: int) -> list[int]:
    return [max(1, int(share * n_total)) for share in SIZE_GRID]


def random_ranking(order: NodeOrder, seed: int, draw: int) -> torch.Tensor:
    """[total nodes] flat node indices in a seeded random order, drawn over the nodes' keys."""
    generator = torch.Generator().manual_seed(stable_seed("random node ranking", seed, draw))
    return order.canonical[torch.randperm(len(order.canonical), generator=generator)]


def learned_ranking(sites: Sequence[NodeSite], scores: dict[str, torch.Tensor], order: NodeOrder) -> torch.Tensor:
    """[total nodes] flat node indices by learned score, highest first, ties in key order."""
    flat = torch.cat([scores[s.name].detach().cpu() for s in sites])
    return order.canonical[torch.sort(flat[order.canonical], descending=True, stable=True).indices]


def top(sites: Sequence[NodeSite], ranking: torch.Tensor, k: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The first ``k`` nodes of ``ranking`` as a keep mask per site."""
    flat = torch.zeros(total_nodes(list(sites)), dtype=torch.bool)
    flat[ranking[:k]] = True
    return {s.name: m.to(device) for s, m in zip(sites, flat.split([s.n_nodes for s in sites]))}


@torch.no_grad()
def ranking_curve(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, means: AblationValues,
                  ranking: torch.Tensor, sizes: Sequence[int], full: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Per size, [N] logit differences with the first ``size`` nodes of ``ranking`` alone (the full model at 100%, not
    recomputed when ``full`` is given)."""
    n_total = total_nodes(list(sites))

    def alone(k: int) -> torch.Tensor:
        if k >= n_total and full is not None:
            return full.clone()
        return ablated_logit_diffs(adapter, batches, sites, top(sites, ranking, k, adapter.device), means)

    return [alone(k) for k in sizes]


@torch.no_grad()
def faithfulness_curves(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, means: AblationValues,
                        scores: dict[str, torch.Tensor], order: NodeOrder, circuit_size: int, seed: int,
                        n_random_sets: int = N_RANDOM_SETS, full: torch.Tensor | None = None) -> FaithfulnessCurves:
    """The learned and a random ranking's circuits at every grid size (the full model at 100%, not recomputed
    when ``full`` is given), and ``n_random_sets`` random sets of ``circuit_size`` nodes ablated."""
    sizes = grid_sizes(total_nodes(list(sites)))
    complements = []
    for draw in range(n_random_sets):
        keep = top(sites, random_ranking(order, seed, draw + 1), circuit_size, adapter.device)
        complements.append(ablated_logit_diffs(adapter, batches, sites, {n: ~k for n, k in keep.items()}, means))
    return FaithfulnessCurves(sizes, ranking_curve(adapter, sites, batches, means, learned_ranking(sites, scores, order), sizes, full),
                              ranking_curve(adapter, sites, batches, means, random_ranking(order, seed, 0), sizes, full), complements)
