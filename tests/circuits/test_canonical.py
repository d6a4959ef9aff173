"""The canonical order: any permutation of a model's neurons and heads becomes the same weights, bit for bit,
computing the same function as the user's model, with every node traceable to the user's index."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import node_sites
from fracbench.circuits.canonical import canonical_order
from fracbench.circuits.keys import weight_digests
from fracbench.models import zoo
from fracbench.models.twins import permuted_twin


@pytest.fixture(scope="module", params=["dense", "sparse"])
def model(request):
    return zoo.load(request.param)


def test_every_permuted_twin_has_the_same_canonical_weights_bit_for_bit(model) -> None:
    canonical = canonical_order(model).adapter.model.state_dict()
    for seed in (1, 2):
        twin = canonical_order(permuted_twin(model, seed=seed)).adapter.model.state_dict()
        assert canonical.keys() == twin.keys()
        assert all(torch.equal(canonical[k], twin[k]) for k in canonical), seed
    moved = permuted_twin(model, seed=1).model.state_dict()
    assert not all(torch.equal(moved[k], model.model.state_dict()[k]) for k in moved)  # the twin really is reordered


def test_the_canonical_model_computes_the_user_s_function_under_the_user_s_name(model) -> None:
    canonical = canonical_order(model).adapter
    enc = model.encode(["x = {'a': [1, 2]}", "def f(s):\n    return s"])
    mine, theirs = model.forward(enc).logits, canonical.forward(enc).logits
    assert torch.allclose(mine, theirs, atol=1e-4) and not torch.equal(canonical.model.blocks[0].mlp.fc_in.weight,
                                                                        model.model.blocks[0].mlp.fc_in.weight)
    assert canonical.info.name == model.info.name


def test_each_canonical_node_maps_back_to_the_user_s_node_with_the_same_key(model) -> None:
    found = canonical_order(model)
    sites = node_sites(model)
    mine, theirs = weight_digests(model, sites), weight_digests(found.adapter, sites)
    assert set(found.original) == {f"blocks.{l}.{s}" for l in range(model.info.n_layers)
                                   for s in ("mlp.hook_post", "attn.hook_q", "attn.hook_k", "attn.hook_v")}
    for site in sites:
        back = found.user_indices({site.name: list(range(site.n_nodes))})[site.name]
        assert back == list(range(site.n_nodes))  # a permutation: every user node once
        moved = found.original.get(site.name, torch.arange(site.n_nodes))
        assert all(theirs[site.name][i] == mine[site.name][int(moved[i])] for i in range(site.n_nodes)), site.name
    assert found.user_indices({"blocks.0.mlp.hook_post": [0]}) == {"blocks.0.mlp.hook_post": [int(found.original["blocks.0.mlp.hook_post"][0])]}
