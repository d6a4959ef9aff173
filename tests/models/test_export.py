"""`fracbench zoo export`: a zoo model as a HuggingFace GPT-2 directory that transformers and TransformerLens read
offline, with the native model's token ids and logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fracbench.activations import capture
from fracbench.behaviour import logit_diffs
from fracbench.circuits import PromptBatches, ablated_logit_diffs, node_sites, node_statistics
from fracbench.circuits.nodes import NATIVE_NODE_SITES
from fracbench.cli import main
from fracbench.models import load_model
from fracbench.models.export import LOGIT_TOLERANCE, PROVENANCE_FILE, export, folded_unembedding, to_gpt2
from fracbench.tasks import TASKS

PROMPTS = [ex.prompt for name in TASKS for ex in TASKS[name].examples("test", 8, 0)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[object, Path]:
    native = load_model("zoo:dense")
    return native, export(native, tmp_path_factory.mktemp("export") / "dense")


def test_transformers_reads_the_export_offline_with_the_native_ids_and_logits(exported) -> None:
    native, directory = exported
    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    assert type(model).__name__ == "GPT2LMHeadModel"
    enc = native.encode(PROMPTS)
    hf = tokenizer(PROMPTS, padding=True, return_tensors="pt")
    assert torch.equal(hf["input_ids"] * hf["attention_mask"], enc.ids * enc.attention_mask)
    with torch.no_grad():
        logits = model(input_ids=enc.ids, attention_mask=enc.attention_mask).logits
    real = enc.attention_mask.bool()
    assert torch.allclose(logits[real], native.forward(enc).logits[real], atol=LOGIT_TOLERANCE, rtol=LOGIT_TOLERANCE)


def test_the_hf_adapter_gives_the_export_the_native_behaviour_and_activations(exported) -> None:
    native, directory = exported
    hf = load_model(f"hf:{directory}")
    task = TASKS["bracket_depth"]
    examples = task.examples("test", 64, 0)
    assert torch.allclose(logit_diffs(hf, task, examples), logit_diffs(native, task, examples), atol=1e-4)
    sites = ["blocks.0.hook_resid_mid", "blocks.2.hook_resid_post", "blocks.1.mlp.hook_post", "ln_final.hook_normalized"]
    texts = [e.prompt for e in examples]
    ours, theirs = capture(hf, texts, sites).activations, capture(native, texts, sites).activations
    for site in sites:  # the bias fold leaves the final norm's output as it was
        assert torch.allclose(ours[site], theirs[site], atol=1e-4), site


def test_the_unembedding_bias_is_folded_exactly_through_the_final_norm() -> None:
    model = load_model("zoo:sparse").model
    assert model.unembed.bias.abs().max() > 1  # a bias to fold
    x = torch.randn(16, model.cfg.d_model)
    normed = model.ln_final(x)
    with torch.no_grad():
        assert torch.allclose(normed @ folded_unembedding(model).T, model.unembed(normed), atol=1e-4)


@pytest.mark.parametrize("name", ["sparse", "compiled", "random"])
def test_every_single_network_zoo_model_exports_exactly(name: str) -> None:
    native = load_model(f"zoo:{name}")
    enc = native.encode(PROMPTS[:16])
    with torch.no_grad():
        ours = to_gpt2(native.model, name)(input_ids=enc.ids, attention_mask=enc.attention_mask).logits
    real = enc.attention_mask.bool()
    assert torch.allclose(ours[real], native.forward(enc).logits[real], atol=LOGIT_TOLERANCE, rtol=LOGIT_TOLERANCE)


def test_the_routed_model_is_refused_and_nothing_is_written(tmp_path) -> None:
    with pytest.raises(ValueError, match="router, which GPT-2 cannot express"):
        export(load_model("zoo:routed"), tmp_path / "routed")
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_fails_its_logit_check_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("fracbench.models.export.logit_deviation", lambda *_: 1.0)
    with pytest.raises(RuntimeError, match="logits differ"):
        export(load_model("zoo:dense"), tmp_path / "dense")
    assert list(tmp_path.iterdir()) == []  # neither the directory nor its staging copy


def test_a_bias_that_cannot_be_folded_is_refused(tmp_path) -> None:
    native = load_model("zoo:dense")
    with torch.no_grad():
        native.model.ln_final.weight[0] = 0.0
    with pytest.raises(ValueError, match="a gain of the final LayerNorm is 0"):
        export(native, tmp_path / "dense")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_not_overwritten(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        export(load_model("zoo:dense"), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_the_command_writes_the_directory_and_its_provenance(tmp_path, capsys) -> None:
    assert main(["zoo", "export", "pruned", str(tmp_path / "pruned")]) == 0
    assert "--model hf:" in capsys.readouterr().out
    provenance = json.loads((tmp_path / "pruned" / PROVENANCE_FILE).read_text())
    assert provenance["source"] == "zoo:pruned" and provenance["max_logit_deviation"] <= LOGIT_TOLERANCE
    assert main(["zoo", "export", "routed", str(tmp_path / "routed")]) == 2
    assert "GPT-2 cannot express" in capsys.readouterr().err


def test_transformer_lens_reads_the_export(exported) -> None:
    transformer_lens = pytest.importorskip("transformer_lens")
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    native, directory = exported
    gpt2 = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    c = gpt2.config
    cfg = transformer_lens.HookedTransformerConfig(n_layers=c.n_layer, d_model=c.n_embd, n_ctx=c.n_positions, n_heads=c.n_head,
                                                   d_head=c.n_embd // c.n_head, d_mlp=c.n_inner, d_vocab=c.vocab_size,
                                                   act_fn="gelu", normalization_type="LN", eps=c.layer_norm_epsilon)
    lens = transformer_lens.HookedTransformer(cfg)
    lens.load_state_dict(convert_gpt2_weights(gpt2, cfg), strict=False)
    enc = native.encode(PROMPTS[:1])
    with torch.no_grad():
        assert torch.allclose(lens(enc.ids), native.forward(enc).logits, atol=LOGIT_TOLERANCE, rtol=LOGIT_TOLERANCE)


def test_the_hf_adapter_reads_and_edits_the_export_at_every_native_node_site(exported) -> None:
    """GPT-2's q, k and v (slices of c_attn's output) and its LayerNorms' outputs are the native node sites: the same
    activations, and the same logit differences when half of every site's nodes are mean-ablated."""
    native, directory = exported
    hf = load_model(f"hf:{directory}")
    task = TASKS["quote_close"]
    examples = task.examples("test", 32, 0)
    names = [pattern.format(l=layer) for layer in range(native.info.n_layers) for pattern in NATIVE_NODE_SITES]
    ours, theirs = (capture(a, [e.prompt for e in examples], names).activations for a in (hf, native))
    for name in names:
        assert torch.allclose(ours[name], theirs[name], atol=1e-4), name
    sites = node_sites(native)
    batches = {a: PromptBatches.build(a, task, examples, 32) for a in (hf, native)}
    means = node_statistics(native, batches[native], sites).values
    half = {s.name: torch.arange(s.n_nodes) % 2 == 0 for s in sites}
    diffs = {a: ablated_logit_diffs(a, batches[a], sites, half, means) for a in (hf, native)}
    assert torch.allclose(diffs[hf], diffs[native], atol=1e-3)
    assert not torch.allclose(diffs[native], logit_diffs(native, task, examples), atol=1e-1)  # the ablation did something
