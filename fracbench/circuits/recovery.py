"""How well a found circuit recovers a circuit known node by node (a hand-set model's): precision and recall of its
nodes and the AUROC of the ranking that found it, as InterpBench scores circuit-discovery methods (Gupta et al. 2024)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .nodes import NodeSite

NodeSet = Mapping[str, Sequence[int]]  # node site -> node indices


@dataclass(frozen=True)
class Recovery:
    precision: float  # found nodes that are true (or neutral) over found nodes
    recall: float  # true nodes found over true nodes
    auroc: float | None  # the ranking's scores, true nodes against the others (neutral ones left out); None without scores


def _flat(nodes: NodeSet) -> set[tuple[str, int]]:
    return {(site, int(i)) for site, idx in nodes.items() for i in idx}


def recovery(found: NodeSet, truth: NodeSet, neutral: NodeSet | None = None, scores: Mapping[str, torch.Tensor] | None = None,
             sites: Sequence[NodeSite] = ()) -> Recovery:
    """``found`` against ``truth``; ``neutral`` nodes (a model's LayerNorm partners of true nodes, say) count neither
    way; ``scores`` (site -> [n_nodes], higher ranks first) over ``sites`` give the AUROC: the probability that a true
    node outscores a false one, ties counting half (the Mann-Whitney statistic)."""
    found_set, true_set, neutral_set = _flat(found), _flat(truth), _flat(neutral or {})
    if not true_set:
        raise ValueError("the true circuit is empty: nothing to recover")
    judged = found_set - neutral_set
    precision = len(judged & true_set) / len(judged) if judged else 1.0
    recall = len(found_set & true_set) / len(true_set)
    auroc = None
    if scores is not None:
        positive, negative = [], []
        for site in sites:
            for i, value in enumerate(scores[site.name].detach().cpu().tolist()):
                node = (site.name, i)
                if node in neutral_set:
                    continue
                (positive if node in true_set else negative).append(value)
        pos, neg = torch.tensor(positive, dtype=torch.float64), torch.tensor(negative, dtype=torch.float64)
        greater = (pos[:, None] > neg[None, :]).double().sum() + 0.5 * (pos[:, None] == neg[None, :]).double().sum()
        auroc = float(greater / (len(pos) * len(neg))) if len(neg) else None
    return Recovery(precision, recall, auroc)
