"""Function-preserving twins of a native model: the controls that scores must not notice.

:func:`permuted_twin` reorders every block's MLP neurons and attention heads. The twin
computes the same function (its logits equal the original's up to float summation order),
so every score fracbench reports must come out the same on it: a score that moves measures
the order nodes happen to be stored in, not the model (docs/metrics.md, "Invariance").

:func:`magnitude_pruned_twin` zeroes the smallest weights without retraining: nearly the same
behaviour with far fewer nonzero weights, the control a size score must not reward (scores
version 2's edge-counted compactness gave the dense model pruned to 50% +0.055).
"""

from __future__ import annotations

import copy

import torch

from .native import NativeAdapter


def permuted_twin(adapter: NativeAdapter, seed: int) -> NativeAdapter:
    """The model with each block's MLP neurons and attention heads in a seeded random order."""
    if not isinstance(adapter, NativeAdapter):
        raise TypeError(f"permuted_twin takes a native (zoo) model's adapter, got {type(adapter).__name__}")
    model = copy.deepcopy(adapter.model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.blocks:
            mlp, attn = block.mlp, block.attn
            neurons = torch.randperm(mlp.fc_in.out_features, generator=generator)
            mlp.fc_in.weight.copy_(mlp.fc_in.weight[neurons])
            mlp.fc_in.bias.copy_(mlp.fc_in.bias[neurons])
            mlp.fc_out.weight.copy_(mlp.fc_out.weight[:, neurons])
            heads = torch.randperm(attn.n_heads, generator=generator)
            channels = (heads[:, None] * attn.d_head + torch.arange(attn.d_head)).reshape(-1)  # each head's channels, moved whole
            for proj in (attn.q, attn.k, attn.v):
                proj.weight.copy_(proj.weight[channels])
                proj.bias.copy_(proj.bias[channels])
            attn.o.weight.copy_(attn.o.weight[:, channels])
    return NativeAdapter(model, f"{adapter.info.name} (permuted twin, seed {seed})", adapter.tokenizer, str(adapter.device))


def magnitude_pruned_twin(adapter: NativeAdapter, fraction: float) -> NativeAdapter:
    """The model with the ``fraction`` of each weight matrix smallest in magnitude set to 0 (no retraining)."""
    if not isinstance(adapter, NativeAdapter):
        raise TypeError(f"magnitude_pruned_twin takes a native (zoo) model's adapter, got {type(adapter).__name__}")
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction (of each weight matrix zeroed) must be in [0, 1), got {fraction}")
    model = copy.deepcopy(adapter.model)
    with torch.no_grad():
        for w in model.weight_matrices():
            k = int(fraction * w.numel())
            if k:
                cut = w.abs().flatten().kthvalue(k).values
                w.mul_((w.abs() > cut).to(w.dtype))
    return NativeAdapter(model, f"{adapter.info.name} (magnitude-pruned {fraction:.0%})", adapter.tokenizer, str(adapter.device))
