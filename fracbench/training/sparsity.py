"""Weight-sparse training (Gao et al. 2025): after every optimizer step keep only the
largest-magnitude entries of each weight matrix, annealing the kept fraction from
dense to the target over the first part of training."""

from __future__ import annotations

import math

import torch


def density_at(step: int, total_steps: int, target: float, anneal_fraction: float = 0.5) -> float:
    """Linear anneal from 1.0 at step 0 to ``target`` at ``anneal_fraction`` of training, then flat."""
    end = max(1, int(total_steps * anneal_fraction))
    return target if step >= end else 1.0 - (1.0 - target) * step / end


@torch.no_grad()
def topk_mask(w: torch.Tensor, density: float, min_per_neuron: int) -> torch.Tensor:
    """Boolean mask of the top ``density`` fraction of ``|w|`` (ties at the threshold kept),
    plus each row's and column's top ``min_per_neuron``."""
    a = w.abs()
    k = max(1, math.ceil(density * w.numel()))
    threshold = a.flatten().kthvalue(w.numel() - k + 1).values  # the k-th largest; selection, not a sort
    mask = a >= threshold
    if w.dim() == 2 and min_per_neuron > 0:
        for dim in (0, 1):  # rows are output neurons (or embedded tokens), columns input neurons
            j = min(min_per_neuron, w.shape[1 - dim])
            idx = a.topk(j, dim=1 - dim).indices
            mask.scatter_(1 - dim, idx, True)
    return mask


@torch.no_grad()
def sparsify_(matrices: list[torch.Tensor], density: float, min_per_neuron: int) -> None:
    """Zero every entry outside :func:`topk_mask`, in place."""
    if density >= 1.0:
        return
    for w in matrices:
        w.mul_(topk_mask(w, density, min_per_neuron))


def weight_density(matrices: list[torch.Tensor]) -> float:
    """Fraction of nonzero entries over all ``matrices``."""
    nonzero = sum(int((w != 0).sum()) for w in matrices)
    return nonzero / sum(w.numel() for w in matrices)
