"""Function-preserving twins: the rotated twin computes the same logits with its residual stream in another basis."""

from __future__ import annotations

import pytest
import torch

from fracbench.models import load_model, resolve_model
from fracbench.models.native import NativeAdapter
from fracbench.models.tokenizer import CharTokenizer
from fracbench.models.transformer import Transformer, TransformerConfig
from fracbench.models.twins import residual_rotation, rotated_twin

TEXTS = ["x = [[1, 2], [3]", "name = 'abc", "d = {1: 2, 3"]


def trained_like(**config) -> NativeAdapter:
    """A small model with every parameter (LayerNorm gains and biases too) far from its initialization."""
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=len(CharTokenizer()), d_model=32, n_layers=2, n_heads=2, d_mlp=64, **config))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    model.enforce_groups()
    return NativeAdapter(model, "small")


@pytest.mark.parametrize("groups", [1, 2])
def test_the_rotation_is_orthogonal_block_diagonal_and_fixes_each_group_s_ones(groups: int) -> None:
    Q = residual_rotation(32, groups, seed=3)
    assert torch.allclose(Q @ Q.T, torch.eye(32, dtype=Q.dtype), atol=1e-12)
    width = 32 // groups
    for g in range(groups):
        block = slice(g * width, (g + 1) * width)
        assert torch.allclose(torch.ones(width, dtype=Q.dtype) @ Q[block, block], torch.ones(width, dtype=Q.dtype), atol=1e-12)
    assert not torch.allclose(Q, torch.eye(32, dtype=Q.dtype))
    assert torch.equal(residual_rotation(32, groups, seed=3), Q) and not torch.equal(residual_rotation(32, groups, seed=4), Q)


@pytest.mark.parametrize("config", [{}, {"n_groups": 2, "route_at": 5}])
def test_the_rotated_twin_computes_the_same_logits_and_rotates_only_the_residual_channels(config: dict) -> None:
    model = trained_like(**config)
    twin = rotated_twin(model, seed=1)
    enc = model.encode(TEXTS)
    sites = ["blocks.1.mlp.hook_post", "blocks.0.attn.hook_q", "blocks.0.hook_resid_post", "blocks.1.ln2.hook_normalized"]
    a, b = model.forward(enc, capture=sites), twin.forward(enc, capture=sites)
    assert torch.allclose(a.logits, b.logits, atol=1e-4)
    for site in sites[:2]:  # neurons and q channels: the same values
        assert torch.allclose(a.activations[site], b.activations[site], atol=1e-4)
    for site in sites[2:]:  # the residual stream: other values (another basis)
        assert not torch.allclose(a.activations[site], b.activations[site], atol=1e-2)
    residual = "blocks.0.hook_resid_post"  # the same vectors, rotated: the same lengths
    assert torch.allclose(a.activations[residual].norm(dim=-1), b.activations[residual].norm(dim=-1), rtol=1e-4)
    normalized = b.activations["blocks.1.ln2.hook_normalized"]  # gain and bias folded away: unit variance per group
    assert torch.allclose(normalized.norm(dim=-1), torch.full(normalized.shape[:-1], 32**0.5), rtol=1e-3)
    assert twin.info.weights_sha256 != model.info.weights_sha256 and twin.info.name == "small (rotated twin, seed 1)"


def test_a_rotated_spec_loads_the_twin_of_a_zoo_model_and_refuses_anything_else() -> None:
    twin = load_model("rotated:zoo:dense")
    assert twin.info.name == "zoo:dense (rotated twin, seed 0)"
    dense = load_model("zoo:dense")
    enc = dense.encode(TEXTS)
    assert torch.allclose(dense.forward(enc).logits, twin.forward(enc).logits, atol=1e-3)
    with pytest.raises(ValueError, match="already rotated"):
        resolve_model("rotated:rotated:dense")
    with pytest.raises(TypeError, match="native"):
        rotated_twin(object(), 0)  # type: ignore[arg-type]
