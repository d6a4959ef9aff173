"""The last-token forward (ModelAdapter.last_token_logits): the native model computes its last block past the keys and
values, and the unembedding, at each prompt's last token alone. The task metric reads nothing else, so every ablation
kind, the search's float masks and their gradients must come out as through the whole forward, up to float rounding."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import PromptBatches, ablated_logit_diffs, ablation_interventions, node_sites, node_statistics
from fracbench.circuits.ablation import batch_values, last_token_logit_diffs
from fracbench.circuits.counterfactual import counterfactual_examples
from fracbench.config import RESAMPLE
from fracbench.models import load_model
from fracbench.tasks import get_task

ABLATIONS = ("mean", "positional_mean", RESAMPLE)


@pytest.fixture(scope="module", params=["tiny", "zoo:dense", "zoo:routed", "zoo:sparse"])
def adapter(request, tiny_adapter):
    """The tiny model's one block is its last (every node site is cut to the last token); routed has a router that
    picks channels by position; sparse has AbsTopK neurons."""
    return tiny_adapter if request.param == "tiny" else load_model(request.param)


def _batches(adapter, ablation: str):
    task = get_task("bracket_depth")
    examples = task.examples("train", 40, 3)
    counterfactuals = counterfactual_examples(adapter, task, examples, "train", 0) if ablation == RESAMPLE else None
    batches = PromptBatches.build(adapter, task, examples, batch_size=20, counterfactuals=counterfactuals)
    sites = node_sites(adapter)
    return batches, sites, node_statistics(adapter, batches, sites, ablation)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


def test_the_last_token_logits_are_the_whole_forward_s_at_each_prompt_s_last_token(adapter) -> None:
    enc = adapter.encode(["{[(", "x = {'a': [1, 2", "(" * 40])  # right-padded rows of different lengths
    whole = adapter.forward(enc).logits[torch.arange(3), enc.last_index]
    assert _close(adapter.last_token_logits(enc), whole)


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_a_circuit_ablated_through_the_last_token_forward_gives_the_same_logit_differences(adapter, ablation: str) -> None:
    batches, sites, stats = _batches(adapter, ablation)
    g = torch.Generator().manual_seed(1)
    circuit = {s.name: torch.rand(s.n_nodes, generator=g) > 0.3 for s in sites}
    for b, (enc, targets, foils, _) in enumerate(batches.batches):
        values = batch_values(adapter, batches, b, sites, stats.values)
        whole = last_token_logit_diffs(adapter, enc, targets, foils, ablation_interventions(sites, circuit, values))
        last = last_token_logit_diffs(adapter, enc, targets, foils, ablation_interventions(sites, circuit, values, last_index=enc.last_index),
                                      last_only=True)
        assert _close(last, whole), (b, (last - whole).abs().max())
    # ablated_logit_diffs takes the last-token forward: the same numbers as ablating at every position
    assert not torch.equal(ablated_logit_diffs(adapter, batches, sites, circuit, stats.values),
                           ablated_logit_diffs(adapter, batches, sites, {s.name: torch.ones(s.n_nodes, dtype=torch.bool) for s in sites}, stats.values))


@pytest.mark.parametrize("ablation", ["positional_mean", RESAMPLE])
def test_the_search_s_mask_gradients_are_the_same_through_the_last_token_forward(adapter, ablation: str) -> None:
    """The search stacks the batch once per restart, each copy with its own mask row: positions and per-prompt values
    must follow the copies."""
    batches, sites, stats = _batches(adapter, ablation)
    enc, targets, foils, _ = batches.batches[1]
    restarts, n = 3, len(targets)
    stacked = enc.repeat(restarts)
    g = torch.Generator().manual_seed(2)
    drawn = {s.name: (torch.rand(restarts, s.n_nodes, generator=g) > 0.4).float() for s in sites}  # [R, n_nodes]
    values = batch_values(adapter, batches, 1, sites, stats.values)
    grads = []
    for last_only in (False, True):
        masks = {name: m.clone().requires_grad_() for name, m in drawn.items()}
        keep = {name: m.repeat_interleave(n, dim=0) for name, m in masks.items()}
        diffs = last_token_logit_diffs(adapter, stacked, targets.repeat(restarts), foils.repeat(restarts),
                                       ablation_interventions(sites, keep, values, last_index=stacked.last_index), last_only=last_only)
        diffs.view(restarts, n).mean(dim=1).square().sum().backward()
        grads.append(torch.cat([m.grad.flatten() for m in masks.values()]))
    assert grads[0].abs().max() > 0 and _close(grads[1], grads[0]), (grads[1] - grads[0]).abs().max()
