"""Node keys: random draws that follow a node, not its index.

A circuit's search initialization, the nodes dropout removes and the noise stress adds are
random. Drawn by node index, they change when a model's neurons or heads are reordered,
although the function does not (scores version 2 gave a permuted dense model 393 nodes
instead of 420 on bracket_depth). Here each node gets a key computed from the weights that
belong to it, sorted (so reordering any other dimension leaves it alone); draws are made in
the order of the keys and handed to the nodes holding them. A permuted twin then gets the
same draws on the same (moved) nodes, exactly. docs/metrics.md, "Invariance".

Adapters without weight links (HuggingFace) key a node by its mean and standard deviation
over the search prompts, rounded to 4 significant digits: invariant unless rounding splits
two nearly equal statistics differently, which float summation order can do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..models.adapter import ModelAdapter
from .nodes import NodeSite

SIGNIFICANT_DIGITS = 4  # rounding of the statistics that key a node of an adapter without weight links


@dataclass(frozen=True)
class NodeOrder:
    """Per node site, each node's rank among the site's nodes by key, and the global canonical order."""

    ranks: dict[str, torch.Tensor]  # site -> [n_nodes] long: node i holds the ranks[i]-th draw of the site
    canonical: torch.Tensor  # [total nodes] long: flat node indices (site order, then index) sorted by key

    def per_node(self, site: str, canonical_draws: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Draws made in key order along ``dim`` (length n_nodes), handed to the nodes by their rank."""
        return canonical_draws.index_select(dim, self.ranks[site].to(canonical_draws.device))

    def normal(self, site: NodeSite, prefix: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """[*prefix, n_nodes, group] standard normal draws, each node's taken in key order."""
        draws = torch.randn(*prefix, site.n_nodes, site.group, generator=generator)
        return self.per_node(site.name, draws, dim=len(prefix))


def node_order(adapter: ModelAdapter, sites: Sequence[NodeSite], means: dict[str, torch.Tensor] | None = None,
               stds: dict[str, torch.Tensor] | None = None) -> NodeOrder:
    """The node keys of ``adapter``: from its weight links, or (without them) from the nodes' ``means`` and
    ``stds`` over the search prompts (:class:`~fracbench.circuits.ablation.NodeStatistics`)."""
    digests = weight_digests(adapter, sites)
    if digests is None:
        if means is None:
            raise ValueError(f"{adapter.info.name} has no weight links: node keys need the nodes' means (and stds)")
        digests = _statistic_digests(sites, means, stds)
    ranks, flat_keys = {}, []
    for site in sites:
        keys = digests[site.name]
        order = sorted(range(site.n_nodes), key=keys.__getitem__)
        rank = torch.empty(site.n_nodes, dtype=torch.long)
        rank[torch.tensor(order, dtype=torch.long)] = torch.arange(site.n_nodes)
        ranks[site.name] = rank
        flat_keys += [site.name.encode() + k for k in keys]
    canonical = torch.tensor(sorted(range(len(flat_keys)), key=flat_keys.__getitem__), dtype=torch.long)
    return NodeOrder(ranks, canonical)


def weight_digests(adapter: ModelAdapter, sites: Sequence[NodeSite]) -> dict[str, list[bytes]] | None:
    """Per node: a hash of the sorted values of every weight row (as a link's output) and column (as its input)."""
    try:
        links = sorted(adapter.weight_links(), key=lambda link: link.name)
    except NotImplementedError:
        return None
    hashes = {s.name: [hashlib.blake2b(digest_size=16) for _ in range(s.n_nodes)] for s in sites}
    for link in links:
        w = link.weight.detach().to("cpu", torch.float64).numpy()
        for site, matrix in ((link.out_site, w), (link.in_site, w.T)):
            if site not in hashes:
                continue
            # sorting makes the key blind to the order of the other side's nodes; + 0.0 turns -0.0 into 0.0, which sort as
            # equals in whatever order they came (a weight-sparse model's zeros are both), so their bytes would follow it
            rows = np.sort(matrix + 0.0, axis=1)
            for i, h in enumerate(hashes[site]):
                h.update(link.name.encode())
                h.update(rows[i].tobytes())
    return {name: [h.digest() for h in hs] for name, hs in hashes.items()}


def _statistic_digests(sites: Sequence[NodeSite], means: dict[str, torch.Tensor],
                       stds: dict[str, torch.Tensor] | None) -> dict[str, list[bytes]]:
    out = {}
    for site in sites:
        parts = [means[site.name]] + ([stds[site.name]] if stds is not None else [])
        stats = torch.cat([site.per_node(p.cpu()) for p in parts], dim=1).double().numpy()
        rounded = np.array([[float(f"{v:.{SIGNIFICANT_DIGITS - 1}e}") for v in row] for row in stats])
        out[site.name] = [hashlib.blake2b(np.sort(row).tobytes(), digest_size=16).digest() for row in rounded]
    return out
