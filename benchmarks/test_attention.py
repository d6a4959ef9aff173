"""The native transformer's attention: the fused kernel against the explicit softmax it replaced.

Run: ``python -m pytest benchmarks/test_attention.py --benchmark-only -s``. One forward pass of
the dense zoo model over 128 bracket_depth test prompts (what every circuit, stress and OOD
measurement repeats), with no hook on ``hook_pattern`` (the fused kernel) and with a hook there
that returns a copy of the pattern (the explicit softmax, which materializes [B, H, T, T]). The speed ratio
and the largest logit difference between the two go to extra_info (and are printed); nothing
here asserts a time.
"""

from __future__ import annotations

import pytest
import torch

from fracbench.models import zoo
from fracbench.tasks import get_task

RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def batch():
    adapter = zoo.load("dense")
    texts = [ex.prompt for ex in get_task("bracket_depth").examples("test", 128, 0)]
    return adapter, adapter.encode(texts)


def explicit_softmax(adapter) -> dict:
    """A copying hook on every block's attention pattern: the model materializes the pattern and attends with it."""
    return {name: (lambda p: p.clone()) for name in adapter.sites() if name.endswith("hook_pattern")}


@pytest.mark.parametrize("path", ["explicit softmax", "fused kernel"])
def test_attention_forward(benchmark, batch, path: str) -> None:
    adapter, enc = batch
    interventions = explicit_softmax(adapter) if path == "explicit softmax" else {}
    with torch.no_grad():
        logits = benchmark.pedantic(lambda: adapter.forward(enc, interventions=interventions).logits, rounds=5, iterations=1,
                                    warmup_rounds=1)
    RESULTS[path] = benchmark.stats.stats.median
    RESULTS[f"{path} logits"] = logits
    if len(RESULTS) == 4:
        ratio = RESULTS["explicit softmax"] / RESULTS["fused kernel"]
        gap = float((RESULTS["explicit softmax logits"] - RESULTS["fused kernel logits"]).abs().max())
        benchmark.extra_info.update({"speedup over explicit softmax": ratio, "largest logit difference": gap})
        print(f"\nfused attention: {ratio:.2f}x the explicit softmax (median of 5); largest logit difference {gap:.1e}")
