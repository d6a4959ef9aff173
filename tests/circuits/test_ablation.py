"""Mean ablation through the adapter: keeping every node changes nothing, keeping none pins every node to its mean."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import PromptBatches, ablation_interventions, logit_diffs_under, node_sites, node_statistics
from fracbench.circuits.search import _Heaviside
from fracbench.tasks import get_task


@pytest.fixture(scope="module")
def setup(tiny_adapter):
    task = get_task("quote_close")
    batches = PromptBatches.build(tiny_adapter, task, task.examples("train", 24, 0), batch_size=8)
    sites = node_sites(tiny_adapter)
    return tiny_adapter, task, batches, sites, node_statistics(tiny_adapter, batches, sites)


def test_native_node_sites_are_gaos_node_locations(tiny_adapter) -> None:
    names = [s.name.split(".", 2)[2] for s in node_sites(tiny_adapter)]
    assert names == ["ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v", "hook_attn_out",
                     "ln2.hook_normalized", "mlp.hook_post", "hook_mlp_out"]
    assert sum(s.n_nodes for s in node_sites(tiny_adapter)) == 32 * 7 + 64  # seven sites of d_model = 32 channels, 64 neurons


def test_keeping_every_node_is_the_plain_forward(setup) -> None:
    adapter, _, batches, sites, stats = setup
    everything = {s.name: torch.ones(s.n_nodes, dtype=torch.bool) for s in sites}
    assert torch.equal(logit_diffs_under(adapter, batches, ablation_interventions(sites, everything, stats.means)),
                       logit_diffs_under(adapter, batches))


def test_an_ablated_node_holds_its_mean_on_every_token(setup) -> None:
    adapter, _, batches, sites, stats = setup
    site = next(s for s in sites if s.name.endswith("mlp.hook_post"))
    keep = torch.ones(site.n_nodes, dtype=torch.bool)
    keep[[3, 7]] = False
    enc = batches.batches[0][0]
    acts = adapter.forward(enc, capture=[site.name], interventions=ablation_interventions(sites, {site.name: keep}, stats.means)).activations
    got = acts[site.name][enc.attention_mask.bool()]
    assert torch.allclose(got[:, [3, 7]], stats.means[site.name][[3, 7]].expand(len(got), 2))
    assert not torch.allclose(got[:, 4], stats.means[site.name][4].expand(len(got)))  # kept neurons still vary


def test_node_statistics_are_over_real_tokens_only(setup) -> None:
    adapter, _, batches, sites, stats = setup
    name = sites[0].name
    rows = torch.cat([adapter.forward(enc, capture=[name]).activations[name][enc.attention_mask.bool()] for enc, *_ in batches.batches])
    assert torch.allclose(stats.means[name], rows.double().mean(0).float(), atol=1e-6)
    assert torch.allclose(stats.stds[name], rows.double().std(0, unbiased=False).float(), atol=1e-5)


def test_the_mask_step_passes_sigmoid_gradients() -> None:
    scores = torch.tensor([-2.0, 0.0, 0.5], requires_grad=True)
    kept = _Heaviside.apply(scores)
    kept.sum().backward()
    assert kept.tolist() == [0.0, 0.0, 1.0]
    s = torch.sigmoid(scores.detach())
    assert torch.allclose(scores.grad, s * (1 - s))
