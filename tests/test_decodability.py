"""Decodability measurement: sites, row sets, controls, determinism, bad input, and what the science predicts."""

from __future__ import annotations

import types

import pytest
import torch
from pydantic import ValidationError

from fracbench.activations import LatentData
from fracbench.decodability import default_sites, fit_latent, measure_decodability
from fracbench.models import load_model
from fracbench.models.native import NativeAdapter
from fracbench.results import ProbeSection
from fracbench.scoring import decodability
from fracbench.tasks import get_task

FAST = dict(mlp=False, transfer=False)  # the linear probes only: what most tests need


@pytest.fixture(scope="module")
def section(tiny_adapter: NativeAdapter) -> ProbeSection:
    """bracket_depth on the tiny model, everything on, small caps so the row subsample is exercised."""
    return measure_decodability(tiny_adapter, get_task("bracket_depth"), n_train=40, n_test=12, seed=0, max_train_rows=300,
                                max_test_rows=100)


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
        best = latent.sites[latent.best_site]
        assert latent.mlp.gap == pytest.approx(latent.mlp.test.accuracy - best.test.accuracy)


def test_the_best_site_is_chosen_on_validation_rows_not_test_rows(section: ProbeSection) -> None:
    for latent in section.latents.values():
        validation = {s: p.validation.accuracy - p.control_validation.accuracy for s, p in latent.sites.items()}
        assert validation[latent.best_site] == max(validation.values())


def test_the_same_seed_gives_the_same_section_and_another_seed_another(tiny_adapter: NativeAdapter, section: ProbeSection) -> None:
    again = measure_decodability(tiny_adapter, get_task("bracket_depth"), n_train=40, n_test=12, seed=0, max_train_rows=300,
                                 max_test_rows=100)
    assert again == section
    other = measure_decodability(tiny_adapter, get_task("bracket_depth"), n_train=40, n_test=12, seed=1, max_train_rows=300,
                                 max_test_rows=100, **FAST)
    assert other.latents["depth"].test_labels != section.latents["depth"].test_labels


def test_scoring_recomputes_what_the_section_stores(section: ProbeSection) -> None:
    score = decodability(section)
    for name, latent in section.latents.items():
        best = latent.sites[latent.best_site]
        assert score.latents[name].accuracy.value == best.test.correct.count("1") / len(latent.test_labels)
        assert score.latents[name].control_accuracy.value == best.control_test.accuracy
        assert score.latents[name].chance == latent.chance
    assert 0 <= score.D.low <= score.D.value <= score.D.high <= 1


def test_a_tampered_correctness_string_is_refused(section: ProbeSection) -> None:
    data = section.model_dump()
    latent = data["latents"]["depth"]
    flags = latent["sites"][latent["best_site"]]["test"]["correct"]
    latent["sites"][latent["best_site"]]["test"]["correct"] = ("0" if flags[0] == "1" else "1") + flags[1:]
    with pytest.raises(ValidationError, match="accuracy is .* but the 100 raw correct flags give"):
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
    s = measure_decodability(tiny_adapter, get_task("dict_or_list"), n_train=20, n_test=6, seed=0, sites=sites, **FAST)
    assert list(s.latents["container"].sites) == sites


def test_a_latent_of_a_single_class_is_skipped_with_the_reason(tiny_adapter: NativeAdapter) -> None:
    # copy_name's `source` is always class 1 in distribution (it varies only on the more_names OOD axis)
    s = measure_decodability(tiny_adapter, get_task("copy_name"), n_train=20, n_test=6, seed=0, **FAST)
    assert list(s.latents) == ["next_char"]
    assert "single class of the latent (1)" in s.skipped["source"] and "--n-train" in s.skipped["source"]


def test_a_task_with_nothing_to_probe_is_an_error_naming_task_and_latent(tiny_adapter: NativeAdapter) -> None:
    task = get_task("copy_name")
    only_source = types.SimpleNamespace(name=task.name, latents=[task.latents[0]], splits=task.splits, examples=task.examples)
    with pytest.raises(ValueError, match=r"task 'copy_name', latent 'source': the \d+ fit rows hold a single class.*raise --n-train"):
        measure_decodability(tiny_adapter, only_source, n_train=20, n_test=6, seed=0, **FAST)


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
    args = dict(n_train=8, n_test=4, seed=0) | kwargs
    with pytest.raises(error, match=message):
        measure_decodability(tiny_adapter, get_task("bracket_depth"), **args, **FAST)


def test_cuda_without_cuda_is_refused(tiny_adapter: NativeAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available.*--device cpu"):
        measure_decodability(tiny_adapter, get_task("bracket_depth"), n_train=8, n_test=4, seed=0, device="cuda", **FAST)


def test_bracket_depth_is_decodable_above_control_in_the_trained_model_not_at_random_init() -> None:
    """The science: training puts nesting depth into the residual stream beyond what token
    identity gives (selectivity); a random-init network of the same shape must not decode."""
    task = get_task("bracket_depth")
    D = {}
    for name in ("dense", "random"):
        adapter = load_model(f"zoo:{name}")
        D[name] = decodability(measure_decodability(adapter, task, n_train=96, n_test=48, seed=0, **FAST))
    assert D["dense"].D.value > 0.1
    assert D["random"].D.value < 0.05
    assert D["dense"].D.low > D["random"].D.high  # the intervals do not overlap
    assert D["dense"].latents["depth"].accuracy.value > 0.95
