"""Attribution patching for nodes: a gradient estimate of what ablating each node costs the task's logit difference,
in one forward and backward pass per batch (EAP: Nanda 2023, Syed et al. 2023) or a few (EAP-IG: Hanna et al. 2024),
as a ranking of the nodes beside the learned masks of :mod:`.search`.

Both read the gradient of the logit difference m with respect to a node's mask k (the search's mask: the node's
activation is ``mean + k * (x - mean)``, :func:`.ablation.ablation_interventions`), so every ablation kind and
per-position mean the search uses applies unchanged. EAP evaluates it on the full model (every k = 1): the first-order
estimate of the fall in m when the node alone is ablated. EAP-IG averages it along the straight path from the
all-ablated model (every k = 0) to the full model (every k = alpha, alpha at the midpoints of ``steps`` equal
intervals): the integrated gradients of m along the masks' path, which sum over the nodes to m(full) - m(ablated)
(completeness; Sundararajan et al. 2017) up to the quadrature's error. This is MIB's activation-path variant
(interpolating the ablated nodes' activations), not its input-path one. Scores are signed: a node whose ablation
raises m scores below 0 and ranks last.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ..models.adapter import ModelAdapter
from .ablation import AblationValues, PromptBatches, ablation_interventions, batch_values, last_token_logit_diffs
from .nodes import NodeSite

EAP_IG_STEPS = 8  # points on the path for EAP-IG; the midpoint rule's completeness gap falls as 1/steps^2 (tests)


def attribution_scores(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, means: AblationValues,
                       steps: int = 1, progress: bool = False) -> dict[str, torch.Tensor]:
    """Site -> [n_nodes] float64: per node, the mean over the prompts of the gradient of the logit difference with
    respect to the node's mask: at the full model (``steps`` = 1, EAP), or averaged at the midpoints of ``steps``
    intervals of the path from the all-ablated model to the full one (``steps`` > 1, EAP-IG)."""
    if steps < 1:
        raise ValueError(f"steps (points on the path) must be >= 1, got {steps}")
    alphas = [1.0] if steps == 1 else [(j + 0.5) / steps for j in range(steps)]
    total = {s.name: torch.zeros(s.n_nodes, dtype=torch.float64, device=adapter.device) for s in sites}
    points = [(b, alpha) for b in range(len(batches.batches)) for alpha in alphas]
    for b, alpha in tqdm(points, desc="attribution", disable=not progress, leave=False):
        enc, targets, foils, _ = batches.batches[b]
        masks = {s.name: torch.full((s.n_nodes,), alpha, device=adapter.device, requires_grad=True) for s in sites}
        interventions = ablation_interventions(sites, masks, batch_values(adapter, batches, b, sites, means), last_index=enc.last_index)
        diffs = last_token_logit_diffs(adapter, enc, targets, foils, interventions, last_only=True)
        grads = torch.autograd.grad(diffs.sum(), list(masks.values()), allow_unused=True)
        for name, grad in zip(masks, grads):
            if grad is not None:  # a site the logit difference does not depend on keeps 0
                total[name] += grad.double()
    return {name: (t / (batches.n * len(alphas))).cpu() for name, t in total.items()}
