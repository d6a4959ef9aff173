"""fracbench at GPT-2-small scale (issue 17): GPT-2-small-shaped (124M parameters) and Pythia-160M-shaped models built
here from their configs (random weights, a byte-level BPE tokenizer trained on the task corpus, nothing downloaded),
against the dense zoo model, unit by unit: activation capture at every residual site, one circuit-search step, EAP-IG
attribution scores, and ablated forward passes (what bisection, the curves, stress and OOD repeat), each on one batch
of 64 bracket_depth prompts; and streaming ridge probes at d = 768 over 10^6 rows (model-free: the probes see
activations only). Each unit's seconds and peak resident memory above the process's level before it go to extra_info.

The extrapolated full run (one task, CPU) scales the dense model's own measured run, stage by stage, by the unit that
stage repeats: the search stages (circuit_search, control, regimes) by the search step's ratio, the forward stages
(behaviour, token pruning, erasure, faithfulness, stress, OOD, sparsity) by the ablated forward's, the probes by the
capture's. The dense run's stage seconds are read from the project board's entry (the same machine's full run). It
is an estimate, printed with its parts; nothing asserts a time.

Run: ``python -m pytest benchmarks/test_scale.py --benchmark-only -s`` with nothing else heavy on the machine (about
3 minutes on 2 cores; peak memory about 3 GB).
"""

from __future__ import annotations

import ctypes
import gc
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

from fracbench.activations import capture
from fracbench.circuits import PromptBatches, SearchSettings, ablated_logit_diffs, node_sites, node_statistics
from fracbench.circuits.attribution import EAP_IG_STEPS, attribution_scores
from fracbench.circuits.search import learn_scores
from fracbench.evaluate.coherence import SEARCH_BATCH
from fracbench.evaluate.decodability import default_sites
from fracbench.leaderboard import entries
from fracbench.models import load_model
from fracbench.models.hf import HFAdapter
from fracbench.probes import LinearProbes
from fracbench.results import read_results
from fracbench.tasks import get_task
from tests.models.test_hf import _byte_level_tokenizer, _corpus

MODELS = ("zoo:dense", "gpt2-small", "pythia-160m")
UNITS = ("capture", "search step", "attribution", "ablated forward")
PROBE_ROWS, PROBE_D, PROBE_CHUNK = 1_000_000, 768, 50_000
SEARCH_STAGES = ("circuit_search", "control", "regimes")
PROBE_STAGES = ("probes",)
BOARD = Path(__file__).resolve().parents[1] / "leaderboard"
UNIT_SECONDS: dict[tuple[str, str], float] = {}


class PeakMemory:
    """The largest resident set size seen while the block runs (sampled every 5 ms), above the level at its start."""

    def __enter__(self) -> PeakMemory:
        _release_freed_memory()
        self._process, self._stop = psutil.Process(), threading.Event()
        self.start = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def above_start_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def _release_freed_memory() -> None:
    """Hand memory freed by earlier units back to the system (glibc keeps freed heap pages mapped): without this, a
    unit that fits in what an earlier, larger model freed shows no growth of the resident set at all."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the peak is then measured above a possibly inflated start
        pass


def _build(name: str):
    if name.startswith("zoo:"):
        return load_model(name)
    tok = _byte_level_tokenizer(_corpus())
    torch.manual_seed(0)
    if name == "gpt2-small":
        model = GPT2LMHeadModel(GPT2Config(n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257))
    else:
        model = GPTNeoXForCausalLM(GPTNeoXConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                                                 vocab_size=50304, max_position_embeddings=2048, rotary_pct=0.25))
    return HFAdapter(model, tok, f"hf:{name}-shaped (random weights)")


@pytest.fixture(scope="module", params=MODELS)
def prepared(request):
    adapter = _build(request.param)
    task = get_task("bracket_depth")
    examples = task.examples("train", SEARCH_BATCH, 0)
    sites = node_sites(adapter)
    batches = PromptBatches.build(adapter, task, examples, SEARCH_BATCH)  # one batch of 64 prompts
    stats = node_statistics(adapter, batches, sites)
    return request.param, adapter, examples, sites, batches, stats


def _unit(unit: str, adapter, examples, sites, batches, stats) -> Callable[[], object]:
    if unit == "capture":
        texts, residual = [e.prompt for e in examples], default_sites(adapter)
        return lambda: capture(adapter, texts, residual)
    if unit == "search step":  # one restart: restarts stack their copies of the batch, so R restarts cost about R of these
        return lambda: learn_scores(adapter, sites, batches, stats.means, SearchSettings(steps=1), spans=[1.0])
    if unit == "attribution":
        return lambda: attribution_scores(adapter, sites, batches, stats.means, steps=EAP_IG_STEPS)
    half = {s.name: torch.arange(s.n_nodes) % 2 == 0 for s in sites}
    return lambda: ablated_logit_diffs(adapter, batches, sites, half, stats.means)


@pytest.mark.parametrize("unit", UNITS)
def test_unit(benchmark, prepared, unit: str) -> None:
    name, adapter, *rest = prepared
    call = _unit(unit, adapter, *rest)
    with PeakMemory() as memory:
        benchmark.pedantic(call, rounds=1, iterations=1, warmup_rounds=0)
    UNIT_SECONDS[name, unit] = benchmark.stats.stats.min
    benchmark.extra_info.update(model=name, unit=unit, n_params=adapter.info.n_params, peak_mb_above_start=round(memory.above_start_mb))
    print(f"\n{name} ({adapter.info.n_params / 1e6:.1f}M): {unit} {UNIT_SECONDS[name, unit]:.2f} s, peak +{memory.above_start_mb:.0f} MB")
    if unit == UNITS[-1] and name != "zoo:dense" and all(("zoo:dense", u) in UNIT_SECONDS for u in UNITS):
        estimate, parts = extrapolated_run(name)
        benchmark.extra_info.update(extrapolated_task_seconds=round(estimate), extrapolated_parts=parts)
        print(f"{name}: one task's full run on this CPU, extrapolated from the dense run: {estimate / 3600:.1f} h ({parts})")


def extrapolated_run(name: str) -> tuple[float, dict[str, float]]:
    """One task's full-run seconds for ``name``: the dense board run's mean seconds per task in each stage, times the
    ratio of the unit that stage repeats."""
    dense = next(r for r in map(read_results, entries(BOARD)) if r.model.name == "zoo:dense")  # each file read once, until found
    stages: dict[str, float] = {}
    for per_task in dense.provenance.timings.stages.values():
        for stage, seconds in per_task.items():
            stages[stage] = stages.get(stage, 0.0) + seconds / len(dense.tasks)
    ratio = {unit: UNIT_SECONDS[name, unit] / UNIT_SECONDS["zoo:dense", unit] for unit in UNITS}
    parts = {stage: round(s * ratio["search step" if stage in SEARCH_STAGES else "capture" if stage in PROBE_STAGES else "ablated forward"])
             for stage, s in stages.items()}
    return float(sum(parts.values())), parts


def test_streaming_probes_at_d768_over_a_million_rows(benchmark) -> None:
    """Ridge probes streamed over 10^6 rows of d = 768 (one site, one binary label set), in chunks: memory stays that of
    the sufficient statistics however many rows come."""
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(PROBE_D, generator=generator)

    def stream() -> LinearProbes:
        probes = LinearProbes()
        for start in range(0, PROBE_ROWS, PROBE_CHUNK):
            X = torch.randn(1, PROBE_CHUNK, PROBE_D, generator=generator)
            Y = (X[0] @ direction > 0).long()[None, None]
            probes.partial_fit(X, Y, classes=[0, 1] if start == 0 else None)
        return probes

    with PeakMemory() as memory:
        probes = benchmark.pedantic(stream, rounds=1, iterations=1)
    X = torch.randn(1, 4096, PROBE_D, generator=generator)
    accuracy = float(probes.score(X, (X[0] @ direction > 0).long()[None, None]).mean())
    benchmark.extra_info.update(rows=PROBE_ROWS, d=PROBE_D, accuracy=round(accuracy, 4), peak_mb_above_start=round(memory.above_start_mb))
    print(f"\nstreaming ridge, {PROBE_ROWS:,} rows x d {PROBE_D}: {benchmark.stats.stats.min:.1f} s, peak +{memory.above_start_mb:.0f} MB, "
          f"accuracy {accuracy:.3f}")
    assert accuracy > 0.95  # the stream fitted the direction: a probe that learned nothing would sit at 0.5
