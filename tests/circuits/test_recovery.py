"""Recovery of a known circuit: precision, recall and AUROC by their definitions."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits.nodes import NodeSite
from fracbench.circuits.recovery import recovery

SITES = [NodeSite("a", (4,), 1), NodeSite("b", (3,), 1)]


def test_precision_and_recall_count_nodes_and_neutral_nodes_count_neither_way() -> None:
    r = recovery(found={"a": [0, 1, 3], "b": [2]}, truth={"a": [0, 1], "b": [0]}, neutral={"a": [3]})
    assert r.precision == pytest.approx(2 / 3) and r.recall == pytest.approx(2 / 3) and r.auroc is None


def test_auroc_is_the_chance_a_true_node_outscores_a_false_one() -> None:
    scores = {"a": torch.tensor([0.9, 0.1, 0.5, 0.5]), "b": torch.tensor([0.8, 0.5, -1.0])}
    # true: a0 (0.9), a2 (0.5); false: a1 0.1, a3 0.5, b0 0.8, b1 0.5, b2 -1.0
    # a0 beats all 5; a2 beats a1 and b2, ties a3 and b1, loses to b0: 2 + 1 = 3 -> (5 + 3) / 10
    r = recovery(found={"a": [0]}, truth={"a": [0, 2]}, scores=scores, sites=SITES)
    assert r.auroc == pytest.approx(0.8)
    perfect = recovery(found={"a": [0, 2]}, truth={"a": [0, 2]}, neutral={"b": [0]}, scores=scores, sites=SITES)
    assert perfect.auroc == pytest.approx((4 + 3) / 8) and perfect.precision == 1.0 and perfect.recall == 1.0


def test_an_empty_truth_is_refused() -> None:
    with pytest.raises(ValueError, match="true circuit is empty"):
        recovery(found={"a": [0]}, truth={})
