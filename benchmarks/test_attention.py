"""The native transformer's attention: the fused kernel against the explicit softmax it replaced.

Run: ``python -m pytest benchmarks/test_attention.py --benchmark-only -s``. One forward pass of
the dense zoo model over 128 bracket_depth prompts (what every circuit, stress and OOD
measurement repeats), short ones (the test split) and long ones (``ood/long_list/3``), with no
hook on ``hook_pattern`` (the fused kernel) and with a hook there that returns a copy of the
pattern (the explicit softmax, which materializes [B, H, T, T]). The speed ratio and the largest
logit difference between the two go to extra_info (and are printed); nothing here asserts a time.
"""

from __future__ import annotations

import pytest
import torch

from fracbench.models import zoo
from fracbench.tasks import get_task

RESULTS: dict[tuple[str, str], object] = {}
SPLITS = ("test", "ood/long_list/3")


@pytest.fixture(scope="module")
def adapter():
    return zoo.load("dense")


def explicit_softmax(adapter) -> dict:
    """A copying hook on every block's attention pattern: the model materializes the pattern and attends with it."""
    return {name: (lambda p: p.clone()) for name in adapter.sites() if name.endswith("hook_pattern")}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("path", ["explicit softmax", "fused kernel"])
def test_attention_forward(benchmark, adapter, split: str, path: str) -> None:
    enc = adapter.encode([ex.prompt for ex in get_task("bracket_depth").examples(split, 128, 0)])
    interventions = explicit_softmax(adapter) if path == "explicit softmax" else {}
    with torch.no_grad():
        logits = benchmark.pedantic(lambda: adapter.forward(enc, interventions=interventions).logits, rounds=5, iterations=1,
                                    warmup_rounds=1)
    RESULTS[split, path] = (benchmark.stats.stats.median, logits)
    if (split, "explicit softmax") in RESULTS and (split, "fused kernel") in RESULTS:
        (slow, a), (fast, b) = RESULTS[split, "explicit softmax"], RESULTS[split, "fused kernel"]
        gap = float((a - b).abs().max())
        benchmark.extra_info.update({"speedup over explicit softmax": slow / fast, "largest logit difference": gap,
                                     "tokens per prompt": enc.ids.shape[1]})
        print(f"\n{split} ({enc.ids.shape[1]} tokens): fused attention {slow / fast:.2f}x the explicit softmax "
              f"(median of 5); largest logit difference {gap:.1e}")
