"""Activation capture: fracbench's batched, length-sorted capture at every residual site against a per-prompt
loop (what a first script does), on 512 prompts of bracket_depth with the dense zoo model.

Run: ``python -m pytest benchmarks/test_capture.py --benchmark-only -s``. The speed ratio and the largest
difference between the two captures go to extra_info; nothing here asserts a time.
"""

from __future__ import annotations

import pytest
import torch

from fracbench.activations import capture
from fracbench.models import load_model
from fracbench.tasks import get_task

TIMES: dict[str, float] = {}
CAPTURED: dict[str, torch.Tensor] = {}


@pytest.fixture(scope="module")
def setting():
    adapter = load_model("zoo:dense")
    texts = [e.prompt for e in get_task("bracket_depth").examples("test", 512, 0)]
    sites = [s for s in adapter.sites() if s.endswith(("hook_resid_pre", "hook_resid_post"))]
    return adapter, texts, sites


@pytest.mark.parametrize("batch_size", [1, 64])
def test_capture(benchmark, setting, batch_size: int) -> None:
    adapter, texts, sites = setting
    got = benchmark.pedantic(lambda: capture(adapter, texts, sites, batch_size=batch_size), rounds=3, iterations=1)
    TIMES[batch_size] = benchmark.stats.stats.min
    CAPTURED[batch_size] = torch.cat([got.activations[s] for s in sites], dim=1)
    benchmark.extra_info.update(rows=len(got.text_index), sites=len(sites))
    if len(TIMES) == 2:
        gap = float((CAPTURED[1] - CAPTURED[64]).abs().max())
        benchmark.extra_info.update(speedup_vs_per_prompt=TIMES[1] / TIMES[64], max_abs_difference=gap)
        print(f"\nbatched capture: {TIMES[1] / TIMES[64]:.1f}x the per-prompt loop; largest difference {gap:.2e}")
