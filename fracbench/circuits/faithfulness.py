"""Faithfulness of a circuit, normalized as in MIB (Mueller et al. 2025).

With m the mean logit difference (target - foil) over the prompts, M the full model, ∅
every node mean-ablated and C the circuit alone (every other node mean-ablated):

* sufficiency = (m(C) - m(∅)) / (m(M) - m(∅)), clipped to [0, 1];
* necessity = 1 - (m(M without C) - m(∅)) / (m(M) - m(∅)), clipped to [0, 1].

Both are undefined (None) when the full model is not at least ``MIN_EFFECT`` logits above
the all-ablated one: then there is no behaviour for a circuit to explain, and a
"circuit" found anyway is not evidence of anything (Lepori et al., Break It Down).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..models.adapter import ModelAdapter
from .ablation import AblationValues, PromptBatches, ablated_logit_diffs, logit_diffs_under
from .nodes import NodeSite

MIN_EFFECT = 0.5  # logits: m(M) - m(∅) below this leaves nothing to normalize by


def normalized(value: float, empty: float, full: float) -> float:
    """(value - empty) / (full - empty), unclipped; NaN when full == empty."""
    span = full - empty
    return (value - empty) / span if span != 0 else float("nan")


def clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


@dataclass
class Conditions:
    """Per-prompt logit differences [N] under the four conditions faithfulness compares."""

    full: torch.Tensor
    empty: torch.Tensor
    circuit: torch.Tensor
    complement: torch.Tensor

    @property
    def has_effect(self) -> bool:
        return float(self.full.mean() - self.empty.mean()) >= MIN_EFFECT

    @property
    def sufficiency(self) -> float | None:
        if not self.has_effect:
            return None
        return clip01(normalized(float(self.circuit.mean()), float(self.empty.mean()), float(self.full.mean())))

    @property
    def necessity(self) -> float | None:
        if not self.has_effect:
            return None
        return clip01(1 - normalized(float(self.complement.mean()), float(self.empty.mean()), float(self.full.mean())))


def measure_conditions(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, means: AblationValues,
                       kept: dict[str, torch.Tensor], full: torch.Tensor | None = None, empty: torch.Tensor | None = None) -> Conditions:
    """Logit differences with everything, nothing, the circuit only and all but the circuit;
    ``full`` and ``empty`` may be passed in when already known (they do not depend on the circuit)."""

    def run(keep: dict[str, torch.Tensor] | None) -> torch.Tensor:
        return logit_diffs_under(adapter, batches) if keep is None else ablated_logit_diffs(adapter, batches, sites, keep, means)

    nothing = {name: torch.zeros_like(k) for name, k in kept.items()}
    return Conditions(
        full=run(None) if full is None else full,
        empty=run(nothing) if empty is None else empty,
        circuit=run(kept),
        complement=run({name: ~k for name, k in kept.items()}),
    )
