"""Function-preserving twins of a native model: the controls that scores must not notice.

:func:`permuted_twin` reorders every block's MLP neurons and attention heads. The twin
computes the same function (its logits equal the original's up to float summation order),
so every score fracbench reports must come out the same on it: a score that moves measures
the order nodes happen to be stored in, not the model (docs/metrics.md, "Invariance").
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
