"""What the last-token forward (ModelAdapter.last_token_logits) saves: the native model computes its last block past
the keys and values, and the unembedding, at each prompt's last token alone. Measured on the dense zoo model over the
256 bracket_depth search prompts (4 length-sorted batches of 64, positional-mean ablation, a random half of the nodes
kept), against the whole forward, in one run:

* a search step: the batch stacked once per restart (5), float masks, forward and backward;
* an ablated forward: one boolean circuit, no gradient (bisection, curves, faithfulness, OOD and stress repeat it).

Run: ``python -m pytest benchmarks/test_last_token.py --benchmark-only -s`` with nothing else heavy on the machine.
The ratio (last-token / whole) goes to extra_info; nothing asserts a time.
"""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import PromptBatches, ablation_interventions, node_sites, node_statistics
from fracbench.circuits.ablation import last_token_logit_diffs
from fracbench.evaluate.coherence import SEARCH_BATCH
from fracbench.models import load_model
from fracbench.tasks import get_task

RESTARTS = 5
SECONDS: dict[tuple[str, bool], float] = {}


@pytest.fixture(scope="module")
def setting():
    adapter = load_model("zoo:dense")
    task = get_task("bracket_depth")
    batches = PromptBatches.build(adapter, task, task.examples("train", 256, 0), SEARCH_BATCH)
    sites = node_sites(adapter)
    stats = node_statistics(adapter, batches, sites, "positional_mean")
    g = torch.Generator().manual_seed(0)
    circuit = {s.name: torch.rand(s.n_nodes, generator=g) > 0.5 for s in sites}
    return adapter, batches, sites, stats.values, circuit


def _search_steps(setting, last_only: bool) -> float:
    adapter, batches, sites, values, circuit = setting
    total = 0.0
    for enc, targets, foils, _ in batches.batches:
        masks = {name: k.float().expand(RESTARTS, -1).clone().requires_grad_() for name, k in circuit.items()}
        stacked = enc.repeat(RESTARTS)
        keep = {name: m.repeat_interleave(len(targets), dim=0) for name, m in masks.items()}
        diffs = last_token_logit_diffs(adapter, stacked, targets.repeat(RESTARTS), foils.repeat(RESTARTS),
                                       ablation_interventions(sites, keep, values, last_index=stacked.last_index), last_only=last_only)
        loss = diffs.view(RESTARTS, -1).mean(dim=1).square().sum()
        loss.backward()
        total += float(loss)
    return total


@torch.no_grad()
def _ablated_forwards(setting, last_only: bool) -> float:
    adapter, batches, sites, values, circuit = setting
    total = 0.0
    for enc, targets, foils, _ in batches.batches:
        interventions = ablation_interventions(sites, circuit, values, last_index=enc.last_index)
        total += float(last_token_logit_diffs(adapter, enc, targets, foils, interventions, last_only=last_only).sum())
    return total


@pytest.mark.parametrize("last_only", [False, True], ids=["whole forward", "last-token forward"])
@pytest.mark.parametrize("unit", ["search step", "ablated forward"])
def test_last_token_forward(benchmark, setting, unit: str, last_only: bool) -> None:
    measure = _search_steps if unit == "search step" else _ablated_forwards
    measure(setting, last_only)  # warm-up
    benchmark.pedantic(lambda: measure(setting, last_only), rounds=5, iterations=1)
    SECONDS[unit, last_only] = benchmark.stats.stats.min
    benchmark.extra_info.update(unit=unit, last_only=last_only)
    if last_only and (unit, False) in SECONDS:
        ratio = SECONDS[unit, True] / SECONDS[unit, False]
        benchmark.extra_info.update(ratio_to_whole_forward=round(ratio, 3))
        print(f"\n{unit}: whole forward {SECONDS[unit, False]:.3f} s, last-token forward {SECONDS[unit, True]:.3f} s ({ratio:.2f}x)")
