"""Circuit edges: nonzero weights joining two kept nodes (Gao et al.'s edge count).

The residual stream's pass-through from a write channel to a later read of the same
channel is not a weight and is not counted.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..models.adapter import ModelAdapter


def count_edges(adapter: ModelAdapter, kept: Mapping[str, torch.Tensor]) -> int | None:
    """Nonzero weights between kept nodes; None when the adapter does not expose its weights."""
    try:
        links = adapter.weight_links()
    except NotImplementedError:
        return None
    total = 0
    for link in links:
        rows, cols = kept.get(link.out_site), kept.get(link.in_site)
        if rows is None or cols is None:
            continue
        total += int((link.weight.detach()[rows][:, cols] != 0).sum())
    return total


def edge_slots(adapter: ModelAdapter) -> int | None:
    """Weight entries between node sites, zero or not: the most edges a circuit could have."""
    try:
        links = adapter.weight_links()
    except NotImplementedError:
        return None
    return sum(link.weight.numel() for link in links)
