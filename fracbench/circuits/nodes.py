"""Circuit nodes: which activations a circuit is made of, and how they group into nodes.

Native models (Gao et al.'s node set): per block, the residual channels attention and the
MLP read, after their LayerNorm (``ln1.hook_normalized``, ``ln2.hook_normalized``: ablating
a channel before the norm would also rescale every other channel), the channels they write
(``hook_attn_out``, ``hook_mlp_out``), the q/k/v channels and the MLP neurons. HuggingFace and TransformerLens models,
through the adapter: MLP neurons and attention heads (``attn.hook_z``, one node per head).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..models.adapter import ModelAdapter

NATIVE_NODE_SITES = (
    "blocks.{l}.ln1.hook_normalized",
    "blocks.{l}.attn.hook_q",
    "blocks.{l}.attn.hook_k",
    "blocks.{l}.attn.hook_v",
    "blocks.{l}.hook_attn_out",
    "blocks.{l}.ln2.hook_normalized",
    "blocks.{l}.mlp.hook_post",
    "blocks.{l}.hook_mlp_out",
)
HF_NODE_SITES = ("blocks.{l}.attn.hook_z", "blocks.{l}.mlp.hook_post")


@dataclass(frozen=True)
class NodeSite:
    """A site whose activation at one position, ``shape``, splits into ``n_nodes`` nodes of
    ``group`` entries each (1 for a channel or neuron, d_head for an attention head)."""

    name: str
    shape: tuple[int, ...]
    group: int

    @property
    def n_nodes(self) -> int:
        return math.prod(self.shape) // self.group

    def per_node(self, x: torch.Tensor) -> torch.Tensor:
        """[..., *shape] -> [..., n_nodes, group]."""
        return x.reshape(*x.shape[: x.ndim - len(self.shape)], self.n_nodes, self.group)


def node_sites(adapter: ModelAdapter) -> list[NodeSite]:
    """The adapter's node sites, block by block in forward order."""
    sites = adapter.sites()
    native = adapter.info.kind == "native"
    out = []
    for layer in range(adapter.info.n_layers):
        for pattern in NATIVE_NODE_SITES if native else HF_NODE_SITES:
            name = pattern.format(l=layer)
            if name not in sites:
                raise ValueError(f"{adapter.info.name} has no site {name}: circuits need it as a node site")
            shape = sites[name]
            heads = not native and name.endswith("hook_z")
            out.append(NodeSite(name, shape, shape[-1] if heads else 1))
    return out


def total_nodes(sites: list[NodeSite]) -> int:
    return sum(s.n_nodes for s in sites)
