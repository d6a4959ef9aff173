"""Control tasks (Hewitt & Liang 2019): labels no model computes, with the real labels' balance.

Each token identity gets one label, drawn from the empirical class distribution of the
real labels; every occurrence of that token carries it. A probe that decodes the
control task as well as the real one is measuring the probe, not the model;
selectivity = accuracy - control accuracy.
"""

from __future__ import annotations

import torch


def control_labels(token_ids: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """[N] control labels: a random function of ``token_ids`` [N] with ``labels`` [N]'s class distribution."""
    if token_ids.shape != labels.shape or token_ids.ndim != 1:
        raise ValueError(f"token_ids and labels must both be [N], got {tuple(token_ids.shape)} and {tuple(labels.shape)}")
    if labels.numel() == 0:
        raise ValueError("no labels: a control task needs at least one example")
    types, inverse = token_ids.cpu().unique(return_inverse=True)
    counts = torch.bincount(labels.cpu()).to(torch.float64)
    generator = torch.Generator().manual_seed(seed)
    per_type = torch.multinomial(counts / counts.sum(), len(types), replacement=True, generator=generator)
    return per_type[inverse].to(labels.device)
