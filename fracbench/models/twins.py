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

from .adapter import ModelAdapter
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


def rotated_twin(adapter: ModelAdapter, seed: int = 0) -> ModelAdapter:
    """The same function with the residual stream in a seeded random orthonormal basis (docs/metrics.md, "Basis
    sensitivity"): every LayerNorm's gain and bias are folded into the weights that read it, then embeddings and
    writers (attention output, MLP output) are multiplied by Q and readers (q, k, v, MLP input, unembedding) by its
    transpose, Q orthogonal and fixing the all-ones direction of each LayerNorm group (so LN(xQ) = LN(x)Q at unit gain).
    Neurons and q/k/v channels keep their values; residual channels are rotated. Native models and HuggingFace GPT-2."""
    if getattr(adapter, "info", None) is not None and adapter.info.kind == "hf":
        return _rotated_gpt2(adapter, seed)
    if not isinstance(adapter, NativeAdapter):
        raise TypeError(f"rotated_twin takes a native (zoo) or HuggingFace GPT-2 model's adapter, got {type(adapter).__name__}")
    model = copy.deepcopy(adapter.model)
    cfg = model.cfg
    Q = residual_rotation(cfg.d_model, cfg.n_groups, seed).to(torch.float64)
    with torch.no_grad():
        for block in model.blocks:
            _fold_and_rotate_readers(block.ln1, [block.attn.q, block.attn.k, block.attn.v], Q)
            _fold_and_rotate_readers(block.ln2, [block.mlp.fc_in], Q)
            for writer in (block.attn.o, block.mlp.fc_out):
                _set(writer.weight, Q.T @ writer.weight.double())
                _set(writer.bias, writer.bias.double() @ Q)
        _fold_and_rotate_readers(model.ln_final, [model.unembed], Q, keep_bias=bool(cfg.route_at))
        for table in (model.embed, model.pos_embed):
            _set(table.weight, table.weight.double() @ Q)
    return NativeAdapter(model, f"{adapter.info.name} (rotated twin, seed {seed})", adapter.tokenizer, str(adapter.device))


@torch.no_grad()
def _rotated_gpt2(adapter: ModelAdapter, seed: int) -> ModelAdapter:
    """A HuggingFace GPT-2's rotated twin. Conv1D layers compute x W + b (W is [in, out]); the unembedding, tied to the
    token embedding in GPT-2, is untied (the input side takes E Q, the output side W_U diag(g) Q) and keeps the final
    norm's bias, rotated and divided by the gain, since it has no bias of its own."""
    from .hf import HFAdapter

    config = adapter.model.config
    if config.model_type != "gpt2":
        raise ValueError(f"a rotated twin of a HuggingFace model is built for GPT-2 only; {adapter.info.name} is {config.model_type!r}")
    model = copy.deepcopy(adapter.model)
    body = model.transformer
    Q = residual_rotation(config.n_embd, 1, seed).to(torch.float64)

    def fold_and_rotate(norm: torch.nn.Module, conv: torch.nn.Module) -> None:
        g, beta, w = norm.weight.double(), norm.bias.double(), conv.weight.double()  # w: [d, out]
        _set(conv.bias, conv.bias.double() + beta @ w)
        _set(conv.weight, Q.T @ (g[:, None] * w))
        _set(norm.weight, torch.ones_like(g))
        _set(norm.bias, torch.zeros_like(beta))

    for block in body.h:
        fold_and_rotate(block.ln_1, block.attn.c_attn)
        fold_and_rotate(block.ln_2, block.mlp.c_fc)
        for writer in (block.attn.c_proj, block.mlp.c_proj):  # [in, d]
            _set(writer.weight, writer.weight.double() @ Q)
            _set(writer.bias, writer.bias.double() @ Q)
    g, beta = body.ln_f.weight.double(), body.ln_f.bias.double()
    unembed = model.lm_head.weight.double()  # [vocab, d]
    model.lm_head.weight = torch.nn.Parameter((unembed * g[None, :] @ Q).to(model.lm_head.weight.dtype), requires_grad=False)
    model.config.tie_word_embeddings = False
    _set(body.ln_f.bias, (beta / g) @ Q)
    _set(body.ln_f.weight, torch.ones_like(g))
    body.wte.weight = torch.nn.Parameter((body.wte.weight.double() @ Q).to(body.wte.weight.dtype), requires_grad=False)
    _set(body.wpe.weight, body.wpe.weight.double() @ Q)
    return HFAdapter(model, adapter.tokenizer, name=f"{adapter.info.name} (rotated twin, seed {seed})", device=str(adapter.device))


def residual_rotation(d_model: int, n_groups: int, seed: int) -> torch.Tensor:
    """[d_model, d_model] a seeded random orthogonal matrix, block-diagonal over the LayerNorm groups, each block fixing
    its group's all-ones direction: Q = B diag(1, R) B^T with B an orthonormal basis whose first vector is the normalized
    ones and R Haar-random (QR of a Gaussian, signs fixed)."""
    generator = torch.Generator().manual_seed(seed)
    width = d_model // n_groups
    blocks = []
    for _ in range(n_groups):
        ones = torch.ones(width, 1, dtype=torch.float64) / width**0.5
        basis, _ = torch.linalg.qr(torch.cat([ones, torch.randn(width, width - 1, generator=generator, dtype=torch.float64)], dim=1))
        basis = basis * torch.sign(basis[:, :1].T @ ones)[0, 0]  # the first column is +ones/sqrt(width), not its negative
        q, r = torch.linalg.qr(torch.randn(width - 1, width - 1, generator=generator, dtype=torch.float64))
        haar = q * torch.sign(torch.diagonal(r))
        inner = torch.block_diag(torch.ones(1, 1, dtype=torch.float64), haar)
        blocks.append(basis @ inner @ basis.T)
    return torch.block_diag(*blocks)


def _fold_and_rotate_readers(norm: torch.nn.Module, readers: Sequence[torch.nn.Linear], Q: torch.Tensor, keep_bias: bool = False) -> None:
    """Readers of ``norm``: W (gain folded in) -> W diag(g) Q, b -> b + W beta; the norm's gain becomes 1 and its bias 0.
    ``keep_bias``: the router multiplies the norm's output by a gate before its reader, so the bias cannot move into
    the reader's; it stays in the norm, rotated and divided by the gain (beta / g) Q, which the gate commutes with."""
    g, beta = norm.weight.double(), norm.bias.double()
    for linear in readers:
        w = linear.weight.double()
        if not keep_bias:
            _set(linear.bias, linear.bias.double() + w @ beta)
        _set(linear.weight, (w * g[None, :]) @ Q)
    _set(norm.bias, (beta / g) @ Q if keep_bias else torch.zeros_like(beta))
    _set(norm.weight, torch.ones_like(g))


def _set(parameter: torch.Tensor, value: torch.Tensor) -> None:
    parameter.copy_(value.to(parameter.dtype))
