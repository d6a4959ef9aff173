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
from collections.abc import Sequence

import torch

from .native import NativeAdapter


def permuted_twin(adapter: NativeAdapter, seed: int) -> NativeAdapter:
    """The model with each block's MLP neurons and attention heads in a seeded random order."""
    if not isinstance(adapter, NativeAdapter):
        raise TypeError(f"permuted_twin takes a native (zoo) model's adapter, got {type(adapter).__name__}")
    generator = torch.Generator().manual_seed(seed)
    neurons, heads = [], []
    for block in adapter.model.blocks:  # per block the neurons' order, then the heads': the draws of scores v2's twins
        neurons.append(torch.randperm(block.mlp.fc_in.out_features, generator=generator))
        heads.append(torch.randperm(block.attn.n_heads, generator=generator))
    return reordered(adapter, neurons, heads, f"{adapter.info.name} (permuted twin, seed {seed})")


def reordered(adapter: NativeAdapter, neurons: Sequence[torch.Tensor], heads: Sequence[torch.Tensor], name: str) -> NativeAdapter:
    """The model with block l's MLP neuron i taken from neuron ``neurons[l][i]`` and head h from head ``heads[l][h]``
    (each a permutation): the same function, the weights moved by indexing, bit for bit."""
    model = copy.deepcopy(adapter.model)
    if not len(neurons) == len(heads) == len(model.blocks):
        raise ValueError(f"one neuron and one head order per block ({len(model.blocks)}), got {len(neurons)} and {len(heads)}")
    with torch.no_grad():
        for block, order, head_order in zip(model.blocks, neurons, heads):
            mlp, attn = block.mlp, block.attn
            mlp.fc_in.weight.copy_(mlp.fc_in.weight[order])
            mlp.fc_in.bias.copy_(mlp.fc_in.bias[order])
            mlp.fc_out.weight.copy_(mlp.fc_out.weight[:, order])
            channels = head_channels(head_order, attn.d_head)
            for proj in (attn.q, attn.k, attn.v):
                proj.weight.copy_(proj.weight[channels])
                proj.bias.copy_(proj.bias[channels])
            attn.o.weight.copy_(attn.o.weight[:, channels])
    return NativeAdapter(model, name, adapter.tokenizer, str(adapter.device))


def head_channels(heads: torch.Tensor, d_head: int) -> torch.Tensor:
    """The q/k/v channels of heads in the order ``heads``: each head's channels moved whole."""
    return (heads[:, None] * d_head + torch.arange(d_head)).reshape(-1)


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
