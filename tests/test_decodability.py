"""Decodability measurement: sites, row sets, controls, determinism, bad input, and what the science predicts."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch
from pydantic import ValidationError

from fracbench.activations import LatentData
from fracbench.config import RunConfig
from fracbench.evaluate.decodability import QUICK_LOOK, ProbeSettings, default_sites, fit_latent, measure_decodability
from fracbench.models import load_model
from fracbench.models.native import NativeAdapter
from fracbench.results import ProbeSection
from fracbench.scoring import decodability
from fracbench.tasks import get_task

FAST = QUICK_LOOK  # the linear probes only: what most tests need


@pytest.fixture(scope="module")
def section(tiny_adapter: NativeAdapter) -> ProbeSection:
    """bracket_depth on the tiny model, everything on, small caps so the row subsample is exercised."""
    return measure_decodability(tiny_adapter, get_task("bracket_depth"), RunConfig(n_train=40, n_test=12, seed=0),
                                settings=ProbeSettings(max_train_rows=300, max_test_rows=100))


def fake_adapter(names: list[str]) -> types.SimpleNamespace:
    return types.SimpleNamespace(sites=lambda: {n: (8,) for n in names}, info=types.SimpleNamespace(name="fake"))


def test_default_sites_are_the_residual_stream_at_layer_boundaries_in_depth_order(tiny_adapter: NativeAdapter) -> None:
    assert default_sites(tiny_adapter) == ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"]
    # GPT-NeoX-like: no resid_mid; sites listed out of order; layer 10 after layer 2
    names = ["blocks.10.hook_resid_post", "blocks.2.hook_resid_post", "blocks.0.hook_resid_pre", "blocks.2.hook_resid_pre",
             "blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "hook_embed", "blocks.0.mlp.hook_post"]
    assert default_sites(fake_adapter(names)) == [
        "blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post",
        "blocks.10.hook_resid_post",
    ]
    with pytest.raises(ValueError, match="no residual-stream sites"):
        default_sites(fake_adapter(["hook_embed"]))


def test_a_section_covers_every_latent_site_and_ood_split(section: ProbeSection, tiny_adapter: NativeAdapter) -> None:
    task = get_task("bracket_depth")
    assert list(section.latents) == [s.name for s in task.latents] and section.skipped == {}
    assert (section.n_fit_examples, section.n_validation_examples, section.n_test_examples) == (32, 8, 12)
    for latent in section.latents.values():
        assert list(latent.sites) == default_sites(tiny_adapter)
        assert set(latent.transfer) == {s.name for s in task.splits() if s.is_ood}
        assert all(t.n <= 100 for t in latent.transfer.values())
        assert len(latent.test_labels) == 100 and latent.n_fit + len(latent.sites[latent.best_site].validation.correct) == 300
        assert set(latent.test_examples) <= set(range(12))
        assert latent.mlp is not None and latent.mlp.site == latent.best_site
        assert latent.untrained is not None and latent.untrained.site in latent.sites
        assert len(latent.untrained.test.correct) == len(latent.test_labels)  # the twin is read on the same rows
        best = latent.sites[latent.best_site]
        assert latent.mlp.gap == pytest.approx(latent.mlp.test.accuracy - best.test.accuracy)


def test_the_best_site_is_chosen_on_validation_rows_not_test_rows(section: ProbeSection) -> None:
    for latent in section.latents.values():
        validation = [p.validation.accuracy for p in latent.sites.values()]
        assert list(latent.sites).index(latent.best_site) == validation.index(max(validation))  # the shallowest on ties


def test_the_same_seed_gives_the_same_section_and_another_seed_another(tiny_adapter: NativeAdapter, section: ProbeSection) -> None:
    again = measure_decodability(tiny_adapter, get_task("bracket_depth"), RunConfig(n_train=40, n_test=12, seed=0),
                                 settings=ProbeSettings(max_train_rows=300, max_test_rows=100))
    assert again == section
    other = measure_decodability(tiny_adapter, get_task("bracket_depth"), RunConfig(n_train=40, n_test=12, seed=1),
                                 settings=ProbeSettings(max_train_rows=300, max_test_rows=100, mlp=False, transfer=False))
    assert other.latents["depth"].test_labels != section.latents["depth"].test_labels


MEASURE_IN_A_FRESH_PROCESS = """
import torch
from fracbench.config import RunConfig
from fracbench.evaluate.decodability import ProbeSettings, measure_decodability
from fracbench.models import load_model
from fracbench.tasks import get_task
threads = torch.get_num_threads()
section = measure_decodability(load_model("zoo:dense"), get_task("bracket_depth"), RunConfig(n_train=48, n_test=16, seed=0),
                               settings=ProbeSettings(transfer=False))
print(threads, torch.get_num_threads())
print(section.model_dump_json())
"""


def test_two_processes_measure_the_same_section_bit_for_bit() -> None:
    """Ridge and MLP probes alike: the MLP fit runs on one torch thread (decodability.one_thread),
    because how reductions split across threads varied from one process to the next."""
    runs = [subprocess.run([sys.executable, "-c", MEASURE_IN_A_FRESH_PROCESS], capture_output=True, text=True, check=True,
                           timeout=300).stdout.splitlines() for _ in range(2)]
    (threads, first), (_, second) = runs
    latent = ProbeSection.model_validate_json(first).latents["depth"]
    assert latent.mlp is not None and len(latent.test_labels) > 100
    assert first == second
    before, after = threads.split()
    assert before == after  # one_thread restores the thread count it found


def test_scoring_recomputes_what_the_section_stores(section: ProbeSection) -> None:
    score = decodability(section)
    for name, latent in section.latents.items():
        best = latent.sites[latent.best_site]
        assert score.latents[name].accuracy.value == best.test.correct.count("1") / len(latent.test_labels)
        assert score.latents[name].control_accuracy.value == best.control_test.accuracy
        assert score.latents[name].lexical.value == latent.lexical.correct.count("1") / len(latent.test_labels)
        assert score.latents[name].chance == latent.chance
    assert 0 <= score.D.low <= score.D.value <= score.D.high <= 1


def test_a_tampered_correctness_string_is_refused(section: ProbeSection) -> None:
    data = section.model_dump()
    latent = data["latents"]["depth"]
    flags = latent["sites"][latent["best_site"]]["test"]["correct"]
    latent["sites"][latent["best_site"]]["test"]["correct"] = ("0" if flags[0] == "1" else "1") + flags[1:]
    with pytest.raises(ValidationError, match="accuracy is .* but the 100 raw correct flags give"):
        ProbeSection.model_validate(data)


def test_a_tampered_lexical_baseline_is_refused(section: ProbeSection) -> None:
    data = section.model_dump()
    lexical = data["latents"]["depth"]["lexical"]
    flags = lexical["correct"]
    lexical["correct"] = ("0" if flags[0] == "1" else "1") + flags[1:]  # a row flipped, the stored accuracy kept
    with pytest.raises(ValidationError, match=r"latents.depth.lexical\n.*accuracy is .* but the 100 raw correct flags give"):
        ProbeSection.model_validate(data)


def synthetic(n_examples: int, rows_per_example: int, labels: torch.Tensor, d: int = 8, seed: int = 0) -> LatentData:
    """Rows whose first feature is the label (linearly decodable), the rest noise; token ids random."""
    g = torch.Generator().manual_seed(seed)
    n = n_examples * rows_per_example
    X = torch.randn(n, d, generator=g)
    X[:, 0] = labels.float() * 4
    return LatentData({"s": X}, labels, torch.randint(0, 30, (n,), generator=g), torch.arange(n_examples).repeat_interleave(rows_per_example))


def test_a_linearly_encoded_latent_is_decoded_and_its_control_is_not() -> None:
    g = torch.Generator().manual_seed(0)
    tr = synthetic(50, 10, torch.randint(0, 2, (500,), generator=g))
    te = synthetic(20, 10, torch.randint(0, 2, (200,), generator=g), seed=1)
    fit = fit_latent("synthetic", tr, te, torch.arange(40, 50), ["s"], {"s": 8}, 0, (0.1, 1.0, 10.0), None, 50, mlp=False)
    probes = fit.sites["s"]
    assert probes.test.accuracy == 1.0
    assert probes.control_test.accuracy < 0.8  # token ids are random: nothing in X predicts their labels
    assert fit.result(2).n_unseen == 0


def token_section(tr: LatentData, te: LatentData, n_test_examples: int) -> ProbeSection:
    """A one-site section of ``fit_latent`` on synthetic rows (validation: the last 10 train examples)."""
    fit = fit_latent("synthetic", tr, te, torch.arange(40, 50), ["s"], {"s": 8}, 0, (1.0,), None, 50, mlp=False)
    return ProbeSection(kind="ridge", alphas=[1.0], max_train_rows=4096, max_test_rows=2048, n_fit_examples=40,
                        n_validation_examples=10, n_test_examples=n_test_examples, latents={"x": fit.result(2)}, skipped={})


def test_a_latent_the_token_determines_gets_d_0_even_read_perfectly() -> None:
    """The model need compute nothing to hold a latent that is a function of the token:
    the lexical baseline decodes it perfectly, so a perfect probe shows nothing above it."""
    g = torch.Generator().manual_seed(0)
    tr = synthetic(50, 10, torch.zeros(500, dtype=torch.long))
    te = synthetic(20, 10, torch.zeros(200, dtype=torch.long), seed=1)
    for data in (tr, te):
        data.token_ids = torch.randint(0, 30, (len(data.labels),), generator=g)
        data.labels = data.token_ids % 2  # the latent is the token's parity
        data.activations["s"][:, 0] = data.labels.float() * 4  # and the probe reads it perfectly
    score = decodability(token_section(tr, te, 20)).latents["x"]
    assert score.accuracy.value == 1.0 and score.lexical.value == 1.0
    assert score.d.value == 0.0 and score.d.high == 0.0


def test_a_latent_independent_of_the_token_has_a_lexical_baseline_at_chance() -> None:
    """Token types take turns in blocks of 4 rows labelled 0, 1, 0, 0: every type has the
    same label mix, so each type's majority is the overall majority and b = c exactly;
    d then measures the probe above chance alone."""
    def rows(n_examples: int, seed: int) -> LatentData:
        n = n_examples * 10
        labels = torch.tensor([0, 1, 0, 0]).repeat(n // 4 + 1)[:n]
        data = synthetic(n_examples, 10, labels, seed=seed)  # the probe reads the label from feature 0
        data.token_ids = torch.arange(n) // 4 % 25
        return data

    tr, te = rows(50, 0), rows(20, 1)
    fit_rows = tr.text_index < 40
    for t in range(25):
        counts = torch.bincount(tr.labels[fit_rows][tr.token_ids[fit_rows] == t], minlength=2)
        assert counts[0] > counts[1]  # every type's majority is class 0, the overall majority
    section = token_section(tr, te, 20)
    latent = section.latents["x"]
    assert latent.majority_class == 0 and latent.lexical.correct == "".join("1" if y == 0 else "0" for y in te.labels.tolist())
    assert latent.lexical.accuracy == latent.chance == 0.75
    score = decodability(section).latents["x"]
    assert score.accuracy.value == 1.0 and score.d.value == 1.0


def test_test_rows_of_a_class_never_seen_in_fit_count_as_wrong() -> None:
    g = torch.Generator().manual_seed(0)
    tr = synthetic(50, 10, torch.randint(0, 2, (500,), generator=g))
    te_labels = torch.randint(0, 2, (200,), generator=g)
    te_labels[:7] = 2  # a class the fit rows never had
    te = synthetic(20, 10, te_labels, seed=1)
    fit = fit_latent("synthetic", tr, te, torch.arange(40, 50), ["s"], {"s": 8}, 0, (1.0,), None, 50, mlp=False)
    latent = fit.result(3)
    assert latent.n_unseen == 7
    assert latent.sites["s"].test.correct[:7] == "0000000"
    assert latent.sites["s"].test.correct[7:] == "1" * 193


def test_sites_of_different_widths_are_probed_in_separate_fits(tiny_adapter: NativeAdapter) -> None:
    sites = ["blocks.0.mlp.hook_post", "blocks.0.hook_resid_post", "blocks.0.attn.hook_z"]  # widths 64, 32, 2 x 16
    s = measure_decodability(tiny_adapter, get_task("dict_or_list"), RunConfig(n_train=20, n_test=6, seed=0), sites, settings=FAST)
    assert list(s.latents["container"].sites) == sites


def cue_agreeing(task, latents=None):
    """The task with its cue always agreeing (the shortcut model's corpus): copy_name then always queries the last name."""
    return types.SimpleNamespace(name=task.name, latents=list(task.latents if latents is None else latents), splits=task.splits,
                                 examples=lambda split, n, seed: task.examples(split, n, seed, cue="agree"))


def test_a_latent_of_a_single_class_is_skipped_with_the_reason(tiny_adapter: NativeAdapter) -> None:
    # with the cue agreeing, copy_name's `source` is always class 1 (the queried name is the last one defined)
    s = measure_decodability(tiny_adapter, cue_agreeing(get_task("copy_name")), RunConfig(n_train=20, n_test=6, seed=0), settings=FAST)
    assert list(s.latents) == ["next_char"]
    assert "single class of the latent (1)" in s.skipped["source"] and "--n-train" in s.skipped["source"]


def test_a_task_with_nothing_to_probe_is_an_error_naming_task_and_latent(tiny_adapter: NativeAdapter) -> None:
    task = get_task("copy_name")
    only_source = cue_agreeing(task, [task.latents[0]])
    with pytest.raises(ValueError, match=r"task 'copy_name', latent 'source': the \d+ fit rows hold a single class.*raise --n-train"):
        measure_decodability(tiny_adapter, only_source, RunConfig(n_train=20, n_test=6, seed=0), settings=FAST)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_train=1), ValueError, r"n_train \(--n-train\) must be at least 2 train examples.*got 1"),
        (dict(n_test=0), ValueError, r"n_test \(--n\) must be at least 1 example per split, got 0"),
        (dict(device="tpu"), ValueError, "device 'tpu' is not a torch device"),
        (dict(sites=["blocks.0.hook_resid_psot"]), KeyError, "did you mean 'blocks.0.hook_resid_post'"),
        (dict(sites=["blocks.0.attn.hook_pattern"]), ValueError, "varies with the input"),
        (dict(sites=[]), ValueError, "sites is empty"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(tiny_adapter: NativeAdapter, kwargs: dict, error: type, message: str) -> None:
    config = RunConfig(**dict(n_train=8, n_test=4, seed=0) | {k: v for k, v in kwargs.items() if k != "sites"})
    with pytest.raises(error, match=message):
        measure_decodability(tiny_adapter, get_task("bracket_depth"), config, kwargs.get("sites"), settings=FAST)


def test_cuda_without_cuda_is_refused(tiny_adapter: NativeAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available.*--device cpu"):
        measure_decodability(tiny_adapter, get_task("bracket_depth"), RunConfig(n_train=8, n_test=4, seed=0, device="cuda"), settings=FAST)


def test_an_adapter_without_an_untrained_twin_is_probed_without_that_baseline(tiny_adapter: NativeAdapter,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot(seed: int):
        raise NotImplementedError("no twin")

    monkeypatch.setattr(tiny_adapter, "untrained_twin", cannot)
    s = measure_decodability(tiny_adapter, get_task("dict_or_list"), RunConfig(n_train=20, n_test=6, seed=0), settings=FAST)
    assert all(latent.untrained is None for latent in s.latents.values())


def test_bracket_depth_is_decodable_in_the_trained_model_far_above_random_init() -> None:
    """The science: training puts nesting depth into the residual stream beyond what the
    current token gives (the lexical baseline) and beyond what the untrained architecture
    gives. A random-init network decodes some depth: its attention is uniform, so its
    residual stream holds the prefix's character frequencies (docs/metrics.md, "Reading D
    on the zoo"); its untrained twin decodes as much, so its D stays near 0."""
    task = get_task("bracket_depth")
    D = {}
    for name in ("dense", "random"):
        adapter = load_model(f"zoo:{name}")
        D[name] = decodability(measure_decodability(adapter, task, RunConfig(n_train=96, n_test=48, seed=0), settings=FAST))
    assert D["dense"].latents["depth"].accuracy.value > 0.95
    assert D["dense"].D.value > 0.9  # read at ~1 by a model that does the task: high D
    assert D["dense"].D.low > D["random"].D.high  # the intervals do not overlap
    assert D["random"].D.value < 0.25 and D["random"].latents["depth"].untrained.value > 0.6  # the twin decodes what it decodes


def test_probes_are_fitted_and_scored_on_cue_random_examples(tiny_adapter: NativeAdapter) -> None:
    """D version 3: with the cue agreeing in every row (suite 0.2), a probe could read the cue instead of the latent."""
    s = measure_decodability(tiny_adapter, get_task("set_or_string"), RunConfig(n_train=40, n_test=200, seed=0), settings=FAST)
    share = s.test_cue_agrees.count("1") / len(s.test_cue_agrees)
    assert len(s.test_cue_agrees) == 200 and 0.4 < share < 0.6
