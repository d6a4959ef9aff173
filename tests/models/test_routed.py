"""Sub-networks side by side and the router (zoo:routed): grouped LayerNorms, block-diagonal weights kept through
training, and each position's logits from one group alone."""

from __future__ import annotations

import pytest
import torch

from fracbench.models.native import NativeAdapter
from fracbench.models.tokenizer import CharTokenizer
from fracbench.models.zoo import Recipe
from fracbench.training import train
from fracbench.models.transformer import GroupedLayerNorm, Transformer, TransformerConfig

ROUTED = {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_mlp": 64, "n_groups": 2, "route_at": 6}


def routed(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerConfig(vocab_size=len(CharTokenizer()), **{**ROUTED, **kw})).eval()


def test_a_grouped_layer_norm_normalizes_each_group_alone() -> None:
    norm = GroupedLayerNorm(8, 2)
    x = torch.randn(3, 8)
    expected = torch.cat([torch.nn.functional.layer_norm(x[:, :4], (4,)), torch.nn.functional.layer_norm(x[:, 4:], (4,))], dim=1)
    assert torch.allclose(norm(x), expected)
    single = GroupedLayerNorm(8, 1)
    assert torch.allclose(single(x), torch.nn.LayerNorm(8)(x), atol=1e-6)


def test_each_position_reads_one_group_chosen_by_its_distance_from_the_last_bos() -> None:
    model = routed()
    tok = CharTokenizer()
    ids = torch.tensor([tok.encode("x = [[1, 2], [3]")])
    plain = model(ids)
    for group, positions in ((0, slice(0, 6)), (1, slice(6, None))):
        other = routed()
        other.load_state_dict(model.state_dict())
        with torch.no_grad():
            columns = slice(16, 32) if group == 0 else slice(0, 16)  # perturb the *other* group's embeddings
            other.embed.weight[:, columns] += torch.randn_like(other.embed.weight[:, columns])
        assert torch.equal(other(ids)[0, positions], plain[0, positions])  # this group's positions never see the other
    # a BOS inside the row starts a new document: its positions count again from 0
    packed = torch.tensor([tok.encode("abcdefg") + tok.encode("xy")])  # BOS + 7 characters, then BOS + 2
    gate = model._routed_channels(packed)
    assert gate[0, :, :16].all(dim=1).tolist() == [True] * 6 + [False] * 2 + [True] * 3  # group 0 reads positions 0-5 of each


def test_weights_between_groups_are_zero_at_initialization_and_after_training() -> None:
    recipe = Recipe("tiny-routed", "test", config=ROUTED, steps=4, batch_size=2, seq_len=64, examples_per_task=20)
    for model in (routed(), train(recipe, progress=False)):
        masks = model.group_masks()
        assert len(masks) == 6 * 2  # q, k, v, o, fc_in, fc_out per block
        assert all(bool((w[~mask] == 0).all()) and bool((w[mask] != 0).any()) for w, mask in masks)


def test_a_router_needs_two_groups_and_groups_must_divide_the_widths() -> None:
    with pytest.raises(ValueError, match=r"the router \(route_at = 6\) joins two sub-networks; n_groups is 1"):
        TransformerConfig(vocab_size=10, d_model=32, n_heads=2, d_mlp=64, route_at=6)
    with pytest.raises(ValueError, match=r"d_mlp \(60\) must be divisible by n_groups \(8\)"):
        TransformerConfig(vocab_size=10, d_model=32, n_heads=8, d_mlp=60, n_groups=8)


def test_the_adapter_runs_a_routed_model_and_its_sites_are_the_usual_ones() -> None:
    adapter = NativeAdapter(routed(), "routed")
    assert adapter.sites()["blocks.0.mlp.hook_post"] == (64,) and "ln_final.hook_normalized" in adapter.sites()
    out = adapter.forward(adapter.encode(["x = 'abcdefgh"]), capture=["ln_final.hook_normalized"])
    normalized = out.activations["ln_final.hook_normalized"][0]
    assert bool((normalized[:6, 16:] == 0).all()) and bool((normalized[6:, :16] == 0).all())  # what the unembedding reads
