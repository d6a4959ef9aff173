"""The HuggingFace path against the native one (issue 17: per stage, an HF run within 1.5x of the native run).

The dense zoo model and a GPT-2 of the same shape (3 blocks, d_model 96, 4 heads, 384 MLP neurons, the native
tokenizer's 98 tokens: one per character, BOS first, built here as a HuggingFace fast tokenizer), each through its
adapter, on the stages that make up a run's time: behaviour (logit differences on the test prompts), activation
capture at every residual site (what the probes read), mask-search steps (5 restarts, the search's own loop) and
ablated forwards with a fixed circuit (what bisection, stress and OOD repeat). The GPT-2's weights are random: these
stages cost the same whatever the weights, and the search is given its spans (``learn_scores(spans=...)``) so that it
runs without behaviour to find. The two adapters' node sets differ by design (native: channels, q/k/v and neurons;
HuggingFace: heads and neurons, docs/metrics.md), so the search and ablation stages compare the two adapters' own
circuits, as a run would.

Run: ``python -m pytest benchmarks/test_hf_speed.py --benchmark-only -s`` with nothing else heavy on the machine.
Per stage the ratio HF / native goes to extra_info and is printed; nothing asserts a time.
"""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from fracbench.activations import capture
from fracbench.behaviour import logit_diffs
from fracbench.circuits import PromptBatches, SearchSettings, ablated_logit_diffs, node_sites, node_statistics
from fracbench.circuits.search import learn_scores
from fracbench.evaluate.coherence import SEARCH_BATCH
from fracbench.evaluate.decodability import default_sites
from fracbench.models import load_model
from fracbench.models.hf import HFAdapter
from fracbench.models.export import char_tokenizer
from fracbench.tasks import get_task

N_PROMPTS, SEARCH_STEPS, RESTARTS = 512, 20, 5
STAGES = ("behaviour", "capture", "search steps", "ablated forwards")
TIMES: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module")
def adapters() -> dict[str, object]:
    native = load_model("zoo:dense")
    cfg = native.model.cfg
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                                      n_head=cfg.n_heads, n_inner=cfg.d_mlp, activation_function="gelu", tie_word_embeddings=False))
    hf = HFAdapter(gpt2, char_tokenizer(), "hf:gpt2 shaped as zoo:dense")
    task = get_task("bracket_depth")
    examples = task.examples("test", N_PROMPTS, 0)
    assert torch.equal(hf.encode([e.prompt for e in examples[:8]]).ids, native.encode([e.prompt for e in examples[:8]]).ids)
    return {"native": native, "hf": hf, "task": task, "examples": examples}


def _stage(stage: str, adapter, task, examples):
    """The stage as a call, its inputs prepared outside the timing."""
    if stage == "behaviour":
        return lambda: logit_diffs(adapter, task, examples)
    if stage == "capture":
        texts, sites = [e.prompt for e in examples], default_sites(adapter)
        return lambda: capture(adapter, texts, sites)
    sites = node_sites(adapter)
    search = PromptBatches.build(adapter, task, examples[:256], SEARCH_BATCH)
    stats = node_statistics(adapter, search, sites)
    if stage == "search steps":
        settings = SearchSettings(steps=SEARCH_STEPS, restarts=RESTARTS)
        return lambda: learn_scores(adapter, sites, search, stats.means, settings, spans=[1.0] * len(search.batches))
    half = {s.name: torch.arange(s.n_nodes) % 2 == 0 for s in sites}  # a fixed circuit: every other node
    return lambda: [ablated_logit_diffs(adapter, search, sites, half, stats.means) for _ in range(10)]


@pytest.mark.parametrize("model", ["native", "hf"])
@pytest.mark.parametrize("stage", STAGES)
def test_stage(benchmark, adapters, stage: str, model: str) -> None:
    call = _stage(stage, adapters[model], adapters["task"], adapters["examples"])
    with torch.no_grad() if stage != "search steps" else torch.enable_grad():
        benchmark.pedantic(call, rounds=3, iterations=1)
    TIMES[stage, model] = benchmark.stats.stats.min
    benchmark.extra_info.update(stage=stage, model=model)
    if (stage, "native") in TIMES and (stage, "hf") in TIMES:
        ratio = TIMES[stage, "hf"] / TIMES[stage, "native"]
        benchmark.extra_info["ratio_hf_to_native"] = round(ratio, 2)
        print(f"\n{stage}: native {TIMES[stage, 'native']:.2f} s, hf {TIMES[stage, 'hf']:.2f} s ({ratio:.2f}x)")
