"""Erasure: LEACE leaves every class of the latent with the same mean on its fit rows, removes at most classes - 1
directions, the control removes as many, BOS is never edited, and a trained model loses its behaviour when the latent
it uses is erased but not when a random subspace of that rank is."""

from __future__ import annotations

import pytest
import torch

from fracbench.activations import latent_dataset
from fracbench.behaviour import logit_diffs
from fracbench.circuits import PromptBatches
from fracbench.config import RunConfig
from fracbench.evaluate.erasure import (N_RANDOM_SUBSPACES, _on_text_tokens, erased_rank, fit_eraser, measure_erasure,
                               random_eraser)
from fracbench.models import resolve_model
from fracbench.results import LatentErasure
from fracbench.evaluate import evaluate
from fracbench.scoring import erasure_gap, erasure_reading, task_erasure
from fracbench.tasks import get_task

SITE = "blocks.0.hook_resid_mid"


@pytest.fixture(scope="module")
def rows(tiny_adapter):
    task = get_task("bracket_depth")
    data = latent_dataset(tiny_adapter, task.examples("train", 64, 0), "depth", [SITE])
    return task, data.activations[SITE], data.labels


def test_leace_leaves_every_class_with_the_same_mean(rows) -> None:
    task, x, labels = rows
    eraser = fit_eraser(x, labels, task.latent("depth").n_classes)
    erased = eraser(x.double())
    means = torch.stack([erased[labels == c].mean(0) for c in labels.unique()])
    before = torch.stack([x.double()[labels == c].mean(0) for c in labels.unique()])
    spread_before, spread_after = (before - before.mean(0)).abs().max(), (means - means.mean(0)).abs().max()
    assert spread_before > 1e-3 and spread_after < 1e-6 * spread_before  # the classes differed before, not after


def test_the_control_erases_as_many_directions_as_the_latent(rows) -> None:
    task, x, labels = rows
    rank = erased_rank(fit_eraser(x, labels, task.latent("depth").n_classes))
    assert 1 <= rank <= len(labels.unique()) - 1
    controls = [random_eraser(x, rank, seed=0, draw=d) for d in range(3)]
    assert [erased_rank(c) for c in controls] == [rank] * 3
    assert not torch.allclose(controls[0].proj_left, controls[1].proj_left)  # draws differ
    assert torch.equal(random_eraser(x, rank, 0, 1).proj_left, controls[1].proj_left)  # and are seeded


def test_bos_and_padding_are_never_edited(tiny_adapter, rows) -> None:
    task, x, labels = rows
    eraser = fit_eraser(x, labels, task.latent("depth").n_classes)
    enc = tiny_adapter.encode(["x = [1", "y = [[2, 3]"])
    acts = torch.randn(2, enc.ids.shape[1], x.shape[1])
    edited = _on_text_tokens(eraser, enc)(acts)
    untouched = ~((enc.offsets[..., 1] > enc.offsets[..., 0]) & enc.attention_mask.bool())
    assert untouched[:, 0].all() and untouched[0, -1]  # BOS of both, padding of the shorter
    assert torch.equal(edited[untouched], acts[untouched]) and not torch.equal(edited[~untouched], acts[~untouched])


def test_erasure_bad_input_names_what_to_fix(tiny_adapter) -> None:
    task = get_task("quote_close")
    examples = task.examples("train", 8, 0)
    fit, test = latent_dataset(tiny_adapter, examples, "quote_type", [SITE]), PromptBatches.build(tiny_adapter, task, examples)
    with pytest.raises(ValueError, match="n_random"):
        measure_erasure(tiny_adapter, task, "quote_type", SITE, fit, test, seed=0, n_random=0)
    with pytest.raises(ValueError, match="captured at \\['blocks.0.hook_resid_mid'\\], not at 'blocks.0.hook_resid_pre'"):
        measure_erasure(tiny_adapter, task, "quote_type", "blocks.0.hook_resid_pre", fit, test, seed=0)
    with pytest.raises(KeyError, match="latent"):
        measure_erasure(tiny_adapter, task, "no_such_latent", SITE, fit, test, seed=0)


def constant(value: float, n: int = 50) -> list[float]:
    return [value] * n


def erased(value: float, *controls: float) -> LatentErasure:
    return LatentErasure(site=SITE, rank=1, n_fit=10, erased=constant(value), controls=[constant(c) for c in controls])


def test_the_gap_is_how_much_more_the_erasure_changes_the_behaviour_than_the_controls() -> None:
    assert erasure_gap(constant(4.0), erased(1.0, 3.0, 5.0)).value == pytest.approx(0.5)  # 0.75 against the controls' 0.25
    gap = erasure_gap(constant(4.0), erased(7.0, 4.0))  # an erasure that raises the logit difference changes it too
    assert (gap.value, gap.low, gap.high) == pytest.approx((0.75, 0.75, 0.75))
    assert erasure_reading(gap) == "used" and erasure_reading(erasure_gap(constant(4.0), erased(4.0, 4.0))) == "not used"


def test_without_behaviour_there_is_no_gap() -> None:
    assert erasure_gap(constant(0.1), erased(-3.0, 0.0)) is None and erasure_reading(None) is None
    with pytest.raises(ValueError, match="the same test prompts"):
        erasure_gap(constant(4.0, n=49), erased(1.0, 1.0))


def test_a_run_with_probes_erases_every_latent_at_its_best_site(tiny_adapter) -> None:
    result = evaluate(tiny_adapter, get_task("quote_close"), RunConfig(n_test=12, seed=0, n_train=24, circuits=False))
    for latent in result.probes.latents.values():
        assert latent.erasure.site == latent.best_site and len(latent.erasure.controls) == N_RANDOM_SUBSPACES
        assert len(latent.erasure.erased) == result.behaviour["test"].n == 12
    assert set(task_erasure(result)) == set(result.probes.latents)  # an untrained model: no behaviour, so no gap
    assert evaluate(tiny_adapter, get_task("quote_close"), RunConfig(n_test=12, seed=0, probes=False, circuits=False)).probes is None


@pytest.mark.slow
def test_erasing_the_quote_a_trained_model_reads_costs_more_than_a_random_subspace() -> None:
    """On the dense zoo model, erasing quote_type where it is read (the residual stream before the last MLP) costs
    most of quote_close's logit difference; random directions of the same rank cost far less."""
    adapter = resolve_model("zoo:dense").load("cpu")
    task = get_task("quote_close")
    site, test = "blocks.2.hook_resid_mid", task.examples("test", 64, 0)
    fit = latent_dataset(adapter, task.examples("train", 128, 0), "quote_type", [site])
    e = measure_erasure(adapter, task, "quote_type", site, fit, PromptBatches.build(adapter, task, test), seed=0, n_random=3)
    assert e.rank == 1
    assert torch.allclose(e.full, logit_diffs(adapter, task, test), atol=1e-5)  # the run passes behaviour's in its place
    gap = erasure_gap(e.full.tolist(), e.section())
    assert 1 - float(e.erased.mean() / e.full.mean()) > 0.5 and gap.low > 0.3
