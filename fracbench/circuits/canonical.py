"""The canonical order: a native model measured with its neurons and heads sorted by their keys.

Reordering a model's MLP neurons or attention heads leaves its function alone but not its float
rounding: the summations run in another order, a permuted twin's logits differ by up to 3e-5,
and a mask search of 200 steps through a hard threshold amplifies that (measured: sparse
dict_or_list, the twin's reported circuit sharing 263 of 457 nodes with the original's). Keys
(:mod:`.keys`) name each node by its own weights, whatever its index, so sorting neurons and heads
by key turns any permutation of a model into the same weights, bit for bit: measured in that
order, a model and all its permuted twins compute the same numbers, and every score is exactly
invariant (docs/metrics.md, "Invariance"). Circuits are reported back in the user's indices.

Models without weight links (HuggingFace) are measured as they are: their keys come from
activation statistics, and nothing here reorders their weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..models.adapter import ModelAdapter
from ..models.native import NativeAdapter
from ..models.twins import head_channels, reordered
from .keys import weight_digests
from .nodes import node_sites


@dataclass(frozen=True)
class Canonical:
    """``adapter`` in key order; ``original`` maps each moved node site's canonical index to the user's index."""

    adapter: ModelAdapter
    original: dict[str, torch.Tensor] = field(default_factory=dict)  # site -> [n_nodes] long

    def user_indices(self, kept: Mapping[str, list[int]]) -> dict[str, list[int]]:
        """A circuit's node indices per site (canonical order) as the user's model numbers them, ascending."""
        out = {}
        for site, indices in kept.items():
            moved = self.original.get(site)
            out[site] = sorted(indices) if moved is None else sorted(int(moved[i]) for i in indices)
        return out


def canonical_order(adapter: ModelAdapter) -> Canonical:
    """The model with each block's MLP neurons and heads sorted by key (ties: identical weights, either order); a
    model without weight links, unchanged. The canonical model keeps the user's name."""
    if not isinstance(adapter, NativeAdapter):
        return Canonical(adapter)
    sites = node_sites(adapter)
    digests = weight_digests(adapter, sites)
    neurons, heads, original = [], [], {}
    for layer, block in enumerate(adapter.model.blocks):
        b = f"blocks.{layer}"
        neuron_keys = digests[f"{b}.mlp.hook_post"]
        neurons.append(torch.tensor(sorted(range(len(neuron_keys)), key=neuron_keys.__getitem__), dtype=torch.long))
        d_head = block.attn.d_head
        head_keys = [hashlib.blake2b(b"".join(digests[f"{b}.attn.hook_{p}"][h * d_head + c] for p in "qkv" for c in range(d_head)),
                                     digest_size=16).digest() for h in range(block.attn.n_heads)]
        heads.append(torch.tensor(sorted(range(len(head_keys)), key=head_keys.__getitem__), dtype=torch.long))
        original[f"{b}.mlp.hook_post"] = neurons[-1]
        channels = head_channels(heads[-1], d_head)
        for p in "qkv":
            original[f"{b}.attn.hook_{p}"] = channels
    return Canonical(reordered(adapter, neurons, heads, adapter.info.name), original)
