"""Mean ablation through the adapter: keeping every node changes nothing, keeping none pins every node to its mean
(pooled over text tokens, or the mean at its position); BOS and padding never enter a mean."""

from __future__ import annotations

import pytest
import torch

from fracbench.circuits import PromptBatches, ablated_logit_diffs, ablation_interventions, logit_diffs_under, node_sites, node_statistics
from fracbench.circuits.ablation import MIN_POSITION_COUNT, last_token_logit_diffs
from fracbench.config import check_ablation
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
    """Bit for bit, through the whole forward and through the last-token forward (what ablated_logit_diffs and the
    plain logit_diffs_under run)."""
    adapter, _, batches, sites, stats = setup
    everything = {s.name: torch.ones(s.n_nodes, dtype=torch.bool) for s in sites}
    enc, targets, foils, _ = batches.batches[0]
    assert torch.equal(last_token_logit_diffs(adapter, enc, targets, foils, ablation_interventions(sites, everything, stats.means)),
                       last_token_logit_diffs(adapter, enc, targets, foils))
    assert torch.equal(ablated_logit_diffs(adapter, batches, sites, everything, stats.position_means), logit_diffs_under(adapter, batches))


@pytest.mark.parametrize("ablation", ["mean", "positional_mean"])
def test_the_search_s_0_1_float_mask_ablates_exactly_as_the_boolean_circuit(setup, ablation: str) -> None:
    """The search learns on float masks and the bisection measures boolean ones: at 0 and 1 they must be the same
    forward, bit for bit (mean + k * (x - mean) was not, at k = 1)."""
    adapter, _, batches, sites, stats = setup
    values = stats.means if ablation == "mean" else stats.position_means
    g = torch.Generator().manual_seed(0)
    circuit = {s.name: torch.rand(s.n_nodes, generator=g) > 0.5 for s in sites}
    per_prompt = {name: k.float().expand(8, -1) for name, k in circuit.items()}  # [B, n_nodes]: the restarts' form
    by_bool = logit_diffs_under(adapter, batches, ablation_interventions(sites, circuit, values))
    assert torch.equal(by_bool, logit_diffs_under(adapter, batches, ablation_interventions(sites, {n: k.float() for n, k in circuit.items()}, values)))
    assert torch.equal(by_bool, logit_diffs_under(adapter, batches, ablation_interventions(sites, per_prompt, values)))


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


def _captured(adapter, batches, name):
    """(activations [B, T, *shape], unpadded [B, T], text [B, T]) of every batch, in order."""
    for enc, *_ in batches.batches:
        unpadded = enc.attention_mask.bool()
        yield adapter.forward(enc, capture=[name]).activations[name], unpadded, unpadded & (enc.offsets[..., 1] > enc.offsets[..., 0])


def test_pooled_statistics_are_over_text_tokens_leaving_out_bos_and_padding(setup) -> None:
    adapter, _, batches, sites, stats = setup
    name = sites[0].name
    captured = list(_captured(adapter, batches, name))
    rows = torch.cat([acts[text] for acts, _, text in captured])
    assert sum(int(text.sum()) for _, _, text in captured) == sum(int(unpadded.sum()) - len(unpadded) for _, unpadded, _ in captured)
    assert torch.allclose(stats.means[name], rows.double().mean(0).float(), atol=1e-6)
    assert torch.allclose(stats.stds[name], rows.double().std(0, unbiased=False).float(), atol=1e-5)
    with_bos = torch.cat([acts[unpadded] for acts, unpadded, _ in captured]).double().mean(0).float()
    assert not torch.allclose(stats.means[name], with_bos, atol=1e-4)  # scores version 2's mean, BOS averaged in


def test_positional_means_average_each_position_over_the_prompts_that_reach_it(setup) -> None:
    adapter, _, batches, sites, _ = setup
    stats = node_statistics(adapter, batches, sites, ablation="positional_mean")
    name = sites[0].name
    captured = list(_captured(adapter, batches, name))
    longest = max(acts.shape[1] for acts, _, _ in captured)
    table = stats.values[name]
    assert table.shape == (longest + 1, *sites[0].shape) and stats.values is stats.position_means
    for position in range(longest):
        rows = torch.cat([acts[:, position][unpadded[:, position]] for acts, unpadded, _ in captured if acts.shape[1] > position])
        expected = rows.double().mean(0).float() if len(rows) >= MIN_POSITION_COUNT else stats.means[name]
        assert torch.allclose(table[position], expected, atol=1e-6), position
    assert torch.equal(table[-1], stats.means[name])  # every later position: the pooled mean
    reached = [sum(int(unpadded[:, p].sum()) for _, unpadded, _ in captured if unpadded.shape[1] > p) for p in range(longest)]
    assert max(reached) >= MIN_POSITION_COUNT > min(reached)  # both branches above were exercised


def test_positional_ablation_leaves_bos_as_no_input_changes_it(setup) -> None:
    """Every node ablated: position 0 (BOS, which attends to itself alone) keeps its clean activation, text positions
    take their position's mean, and the pooled mean would have moved BOS too."""
    adapter, _, batches, sites, _ = setup
    stats = node_statistics(adapter, batches, sites, ablation="positional_mean")
    site = next(s for s in sites if s.name.endswith("mlp.hook_post"))
    nothing = {s.name: torch.zeros(s.n_nodes, dtype=torch.bool) for s in sites}
    enc = batches.batches[0][0]
    clean = adapter.forward(enc, capture=[site.name]).activations[site.name]
    ablated = adapter.forward(enc, capture=[site.name], interventions=ablation_interventions(sites, nothing, stats.values)).activations
    assert torch.allclose(ablated[site.name][:, 0], clean[:, 0], atol=1e-6)
    assert torch.allclose(ablated[site.name][:, 1], stats.values[site.name][1].expand_as(clean[:, 1]))
    assert not torch.allclose(stats.means[site.name], clean[0, 0], atol=1e-3)


def test_prompts_longer_than_the_search_prompts_take_the_pooled_mean_past_them(setup) -> None:
    adapter, task, batches, sites, _ = setup
    stats = node_statistics(adapter, batches, sites, ablation="positional_mean")
    site = next(s for s in sites if s.name.endswith("mlp.hook_post"))
    longest = len(stats.values[site.name]) - 1
    long_prompts = PromptBatches.build(adapter, task, task.examples("ood/long_body/3", 4, 0), batch_size=4)
    enc = long_prompts.batches[0][0]
    assert enc.ids.shape[1] > longest + 2
    nothing = {site.name: torch.zeros(site.n_nodes, dtype=torch.bool)}
    got = adapter.forward(enc, capture=[site.name], interventions=ablation_interventions(sites, nothing, stats.values)).activations[site.name]
    assert torch.allclose(got[:, longest:], stats.means[site.name].expand_as(got[:, longest:]))
    assert torch.allclose(got[:, longest - 1], stats.values[site.name][longest - 1].expand_as(got[:, longest - 1]))


def test_an_unknown_ablation_is_an_error_naming_the_kinds() -> None:
    with pytest.raises(ValueError, match="'positional_mean', 'mean'.*'resample'"):
        check_ablation("resample")


def test_the_mask_step_passes_sigmoid_gradients() -> None:
    scores = torch.tensor([-2.0, 0.0, 0.5], requires_grad=True)
    kept = _Heaviside.apply(scores)
    kept.sum().backward()
    assert kept.tolist() == [0.0, 0.0, 1.0]
    s = torch.sigmoid(scores.detach())
    assert torch.allclose(scores.grad, s * (1 - s))
