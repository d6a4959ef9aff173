"""HFAdapter on tiny GPT-2, GPT-NeoX and Llama models built here, with tokenizers trained here (no downloads)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    BertConfig,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Model,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from fracbench.behaviour import logit_diffs
from fracbench.config import RunConfig
from fracbench.models.adapter import weights_sha256
from fracbench.models.hf import HFAdapter
from fracbench.models.subword import disjoint_spans
from fracbench.tasks import TASKS
from tests.conftest import check_untrained_twin

FAMILIES = ["gpt2", "gpt_neox", "llama"]
N_CTX = 128
TEXTS = ["x = 'ab cd'\nprint(x)", "data = [[1, 2], [3]]\nn = len(data)", "s = set()\ns.add(1)"]


def _corpus() -> list[str]:
    return [ex.prompt + ex.target for name in TASKS for ex in TASKS[name].examples("train", 60)]


def _byte_level_tokenizer(corpus: list[str]) -> PreTrainedTokenizerFast:
    """GPT-2 style: byte-level BPE, every byte a token, no BOS, no pad token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def _sentencepiece_style_tokenizer(corpus: list[str]) -> PreTrainedTokenizerFast:
    """Llama-2 style: "▁" for spaces, prepended to the first word, BOS added, unknown characters -> <unk>."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"]))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def _model(family: str, tok: PreTrainedTokenizerFast) -> torch.nn.Module:
    torch.manual_seed(0)
    ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if family == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=N_CTX, **ids))
    if family == "gpt_neox":
        sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=N_CTX)
        return GPTNeoXForCausalLM(GPTNeoXConfig(**sizes, **ids))
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=N_CTX)
    return LlamaForCausalLM(LlamaConfig(**sizes, num_key_value_heads=2, **ids))  # grouped-query attention, as in Llama 2/3


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, PreTrainedTokenizerFast]:
    corpus = _corpus()
    return {"byte_level": _byte_level_tokenizer(corpus), "sentencepiece": _sentencepiece_style_tokenizer(corpus)}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tokenizers) -> dict[str, Path]:
    dirs = {}
    for family in FAMILIES:
        tok = tokenizers["sentencepiece" if family == "llama" else "byte_level"]
        d = tmp_path_factory.mktemp(family)
        _model(family, tok).save_pretrained(d)
        tok.save_pretrained(d)
        dirs[family] = d
    return dirs


@pytest.fixture(scope="module")
def adapters(model_dirs) -> dict[str, HFAdapter]:
    return {family: HFAdapter.from_pretrained(d) for family, d in model_dirs.items()}


def _reference(model_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()


# -- loading and info ----------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_info_describes_the_loaded_model(adapters, model_dirs, family):
    adapter, ref = adapters[family], _reference(model_dirs[family])
    assert adapter.info.name == f"hf:{model_dirs[family].resolve()}"
    assert adapter.info.kind == "hf"
    assert (adapter.info.n_layers, adapter.info.d_model, adapter.info.n_ctx) == (2, 32, N_CTX)
    assert adapter.info.n_params == sum(p.numel() for p in ref.parameters())
    assert adapter.info.weights_sha256 == weights_sha256(ref)


def test_dtype_string_sets_the_weights_dtype(model_dirs):
    adapter = HFAdapter.from_pretrained(model_dirs["gpt2"], dtype="bfloat16")
    assert next(adapter.model.parameters()).dtype == torch.bfloat16
    assert adapter.forward(adapter.encode(TEXTS)).logits.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype 'float8'.*float32"):
        HFAdapter.from_pretrained(model_dirs["gpt2"], dtype="float8")


def test_missing_directory_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        HFAdapter.from_pretrained(tmp_path / "nowhere")


def test_directory_without_tokenizer_says_how_to_save_one(tmp_path, tokenizers):
    _model("gpt2", tokenizers["byte_level"]).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"has no tokenizer .*tokenizer\.save_pretrained"):
        HFAdapter.from_pretrained(tmp_path)


def test_unsupported_family_lists_supported_ones(tmp_path, tokenizers):
    BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(tmp_path)
    tokenizers["byte_level"].save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'bert' is not supported.*gpt2, gpt_neox, llama"):
        HFAdapter.from_pretrained(tmp_path)


def test_model_without_lm_head_is_not_a_causal_lm(tmp_path, tokenizers):
    GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=2, vocab_size=len(tokenizers["byte_level"]))).save_pretrained(tmp_path)
    tokenizers["byte_level"].save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"\['GPT2Model'\], not a causal language model"):
        HFAdapter.from_pretrained(tmp_path)


def test_truncated_weights_file_is_named_with_how_to_fix_it(tmp_path, model_dirs):
    shutil.copytree(model_dirs["gpt2"], tmp_path, dirs_exist_ok=True)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"its weights file cannot be read \(SafetensorError: .*truncated or damaged"):
        HFAdapter.from_pretrained(tmp_path)


def test_tokenizer_with_ids_past_the_models_vocabulary_is_refused_before_any_forward_pass(tmp_path, tokenizers):
    tok = tokenizers["byte_level"]
    GPT2LMHeadModel(GPT2Config(n_embd=8, n_layer=1, n_head=2, vocab_size=50)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=rf"token ids up to {len(tok) - 1} but the model embeds only 50 tokens"):
        HFAdapter.from_pretrained(tmp_path)


def test_slow_tokenizer_is_refused(model_dirs):
    class SlowTokenizer:
        is_fast = False

    with pytest.raises(ValueError, match="not a fast tokenizer"):
        HFAdapter(_reference(model_dirs["gpt2"]), SlowTokenizer(), name="slow")


# -- forward ---------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_logits_equal_the_hf_models_own(adapters, model_dirs, family):
    adapter = adapters[family]
    enc = adapter.encode(TEXTS)
    with torch.no_grad():
        expected = _reference(model_dirs[family])(input_ids=enc.ids, attention_mask=enc.attention_mask).logits
        plain = adapter.forward(enc).logits
        captured = adapter.forward(enc, capture=list(adapter.sites())).logits
    assert torch.equal(plain, expected)
    assert torch.equal(captured, expected)  # capturing every site changes nothing


@pytest.mark.parametrize("family", FAMILIES)
def test_the_last_token_logits_are_the_forward_s_at_each_text_s_last_token(adapters, family):
    """Only the positions rows end at reach the unembedding (logits_to_keep); an edit at the final LayerNorm's output
    still sees every position."""
    adapter = adapters[family]
    enc = adapter.encode(TEXTS)
    rows = torch.arange(len(TEXTS))
    seen = []
    edit = {"ln_final.hook_normalized": lambda x: seen.append(x.shape) or x * 1.5}
    with torch.no_grad():
        for interventions in ({}, edit):
            whole = adapter.forward(enc, interventions=interventions).logits[rows, enc.last_index]
            assert torch.allclose(adapter.last_token_logits(enc, interventions), whole, atol=1e-5)
    assert len(set(enc.last_index.tolist())) > 1 and adapter._keeps_logits  # rows end at different positions
    assert seen and all(shape[:2] == enc.ids.shape for shape in seen)


@pytest.mark.parametrize("family", FAMILIES)
def test_padding_leaves_real_positions_unchanged(adapters, family):
    adapter = adapters[family]
    enc = adapter.encode(TEXTS)
    with torch.no_grad():
        batch = adapter.forward(enc).logits
        for i, text in enumerate(TEXTS):
            alone = adapter.forward(adapter.encode([text])).logits[0]
            assert torch.allclose(batch[i, : len(alone)], alone, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_site_shapes(adapters, family):
    adapter = adapters[family]
    d_mlp, H = (4 * 32 if family == "gpt2" else 64), 4  # as built by _model
    enc = adapter.encode(TEXTS)
    B, T = enc.ids.shape
    with torch.no_grad():
        acts = adapter.forward(enc, capture=["blocks.0.mlp.hook_post", "blocks.0.attn.hook_z", "hook_embed"]).activations
    assert acts["blocks.0.mlp.hook_post"].shape == (B, T, d_mlp)
    assert acts["blocks.0.attn.hook_z"].shape == (B, T, H, 32 // H)
    assert acts["hook_embed"].shape == (B, T, 32)
    sites = adapter.sites()
    assert sites["blocks.1.mlp.hook_post"] == (d_mlp,)
    assert sites["blocks.1.attn.hook_z"] == (H, 32 // H)
    assert sites["blocks.1.hook_resid_post"] == (32,)


@pytest.mark.parametrize("family", FAMILIES)
def test_resid_post_is_next_blocks_resid_pre(adapters, family):
    adapter = adapters[family]
    with torch.no_grad():
        acts = adapter.forward(adapter.encode(TEXTS), capture=["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"]).activations
    assert torch.equal(acts["blocks.0.hook_resid_post"], acts["blocks.1.hook_resid_pre"])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("site", ["blocks.1.hook_mlp_out", "blocks.1.attn.hook_z", "blocks.0.mlp.hook_post", "blocks.0.hook_resid_pre"])
def test_interventions_replace_the_activation(adapters, family, site):
    adapter = adapters[family]
    enc = adapter.encode(TEXTS)
    with torch.no_grad():
        plain = adapter.forward(enc).logits
        same = adapter.forward(enc, interventions={site: lambda x: x.clone()}).logits
        zeroed = adapter.forward(enc, capture=[site], interventions={site: torch.zeros_like})
    assert torch.equal(same, plain)
    assert (zeroed.logits - plain).abs().max() > 1e-4
    assert not zeroed.activations[site].any()  # capture sees the edited activation


@pytest.mark.parametrize("family", ["gpt2", "llama"])  # GPT-NeoX adds attention and MLP in parallel: no resid_mid
def test_zeroing_attention_makes_resid_mid_equal_resid_pre(adapters, family):
    adapter = adapters[family]
    with torch.no_grad():
        out = adapter.forward(
            adapter.encode(TEXTS),
            capture=["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid"],
            interventions={"blocks.0.hook_attn_out": torch.zeros_like},
        )
    assert torch.equal(out.activations["blocks.0.hook_resid_pre"], out.activations["blocks.0.hook_resid_mid"])


def test_hooks_are_removed_when_an_intervention_fails(adapters):
    adapter = adapters["gpt2"]
    enc = adapter.encode(TEXTS)

    def bad(x: torch.Tensor) -> torch.Tensor:
        return x[..., :3]

    with torch.no_grad():
        plain = adapter.forward(enc).logits
        with pytest.raises(ValueError, match=r"intervention at blocks.0.hook_mlp_out returned .* shape \(3, \d+, 32\)"):
            adapter.forward(enc, capture=["blocks.1.hook_resid_pre"], interventions={"blocks.0.hook_mlp_out": bad})
        assert torch.equal(adapter.forward(enc).logits, plain)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in adapter.model.modules())


def test_non_finite_activations_raise(adapters):
    adapter = adapters["gpt2"]
    with torch.no_grad(), pytest.raises(FloatingPointError, match="non-finite"):
        adapter.forward(adapter.encode(TEXTS), interventions={"blocks.1.hook_mlp_out": lambda x: x * float("nan")})


def test_misspelled_site_suggests_the_right_one(adapters):
    adapter = adapters["gpt2"]
    with pytest.raises(KeyError, match="did you mean 'blocks.0.mlp.hook_post'"):
        adapter.forward(adapter.encode(TEXTS), capture=["blocks.0.mlp.hook_pots"])


# -- tokenization ----------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_offsets_map_characters_to_the_tokens_holding_them(adapters, family):
    adapter = adapters[family]
    enc = adapter.encode(TEXTS)
    for row, text in enumerate(TEXTS):
        chars = [c for c, ch in enumerate(text) if not ch.isspace()]
        for c, t in zip(chars, enc.token_positions(row, chars)):
            piece = adapter.tokenizer.decode([int(enc.ids[row, t])])
            assert text[c] in piece, f"char {c} {text[c]!r} of text {row} mapped to token {t} {piece!r}"


def test_bos_has_an_empty_span_and_padding_is_masked(adapters):
    enc = adapters["llama"].encode(TEXTS)
    assert (enc.ids[:, 0] == adapters["llama"].tokenizer.bos_token_id).all()
    assert enc.offsets[:, 0].tolist() == [[0, 0]] * len(TEXTS)
    enc = adapters["gpt2"].encode(TEXTS)
    short = int(enc.attention_mask.sum(1).argmin())
    assert enc.attention_mask[short, -1] == 0
    assert enc.ids[short, -1] == adapters["gpt2"].tokenizer.eos_token_id  # no pad token: eos pads


def test_shared_characters_go_to_the_last_token():
    # BOS, a prefix "▁" that spans the first letter, the letter, two byte tokens of one character
    assert disjoint_spans([(0, 0), (0, 1), (0, 1), (1, 2), (1, 2)]) == [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2)]


def test_too_long_text_names_its_index_and_the_limit(adapters):
    with pytest.raises(ValueError, match=f"text 1 is \\d+ tokens.*at most {N_CTX}"):
        adapters["gpt2"].encode(["x = 1", "x = 1\n" * N_CTX])


def test_completion_id_is_the_single_token(adapters):
    adapter = adapters["gpt2"]
    for completion in ["'", '"', "]", "\n", " ", ":", ","]:
        (expected,) = adapter.tokenizer(completion, add_special_tokens=False)["input_ids"]
        assert adapter.completion_id(completion) == expected


def test_completion_id_ignores_a_prefix_space_added_when_tokenized_alone(adapters):
    tok = adapters["llama"].tokenizer
    assert tok.convert_ids_to_tokens(tok("'", add_special_tokens=False)["input_ids"]) == ["▁'"]
    assert adapters["llama"].completion_id("'") == tok.convert_tokens_to_ids("'")


def test_multi_token_completion_raises(adapters):
    with pytest.raises(ValueError, match=r"completion 'é' splits into 2 tokens"):
        adapters["gpt2"].completion_id("é")
    with pytest.raises(ValueError, match=r"completion 'qzqzqz' splits into \d+ tokens"):
        adapters["gpt2"].completion_id("qzqzqz")


def test_character_outside_the_vocabulary_raises(adapters):
    with pytest.raises(ValueError, match=r"lacks the character\(s\) \['é'\]"):
        adapters["llama"].completion_id("é")


def test_prompt_characters_outside_the_vocabulary_raise_instead_of_reading_unk(adapters):
    with pytest.raises(ValueError, match=r"text 1: the vocabulary of .* lacks \['é'\], which would be read as '<unk>'"):
        adapters["llama"].encode(["x = 1", "x = 'é'"])


# -- behaviour through the adapter ---------------------------------------------------------
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_logit_diffs_match_the_forward_pass(adapters, family):
    adapter, task = adapters[family], TASKS["quote_close"]
    examples = task.examples("test", 12)
    diffs = logit_diffs(adapter, task, examples, batch_size=5)
    assert diffs.shape == (12,) and torch.isfinite(diffs).all()
    with torch.no_grad():
        for i in (0, 7):
            enc = adapter.encode([examples[i].prompt])
            last = adapter.forward(enc).logits[0, -1]
            expected = last[adapter.completion_id(examples[i].target)] - last[adapter.completion_id(examples[i].foil)]
            assert diffs[i].item() == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_decodability_reads_every_family_at_its_residual_sites(adapters, family):
    """The probe half of the benchmark runs on HuggingFace models through the adapter alone:
    residual sites in depth order, raw per-row results that re-validate, and a D in [0, 1]."""
    from fracbench.evaluate.decodability import QUICK_LOOK, default_sites, measure_decodability
    from fracbench.results import ProbeSection
    from fracbench.scoring import decodability

    sites = default_sites(adapters[family])
    assert sites[0] == "blocks.0.hook_resid_pre" and sites[-1] == "blocks.1.hook_resid_post"
    assert ("blocks.0.hook_resid_mid" in sites) == (family != "gpt_neox")  # NeoX blocks are parallel: no mid point
    section = measure_decodability(adapters[family], TASKS["bracket_depth"], RunConfig(n_train=20, n_test=10, seed=0), settings=QUICK_LOOK)
    latent = section.latents["depth"]
    assert list(latent.sites) == sites
    assert ProbeSection.model_validate(section.model_dump()) == section  # every stored aggregate re-checks
    D = decodability(section).D
    assert 0.0 <= D.low <= D.value <= D.high <= 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_circuits_reach_every_family_through_heads_and_neurons(adapters, family):
    """Circuit nodes of a HuggingFace model are its attention heads and MLP neurons: keeping every
    node is the plain forward, ablating a head pins all of its d_head entries to their means, and
    a whole coherence measurement runs (edges and weight noise unavailable: weights are not exposed)."""
    from fracbench.circuits import PromptBatches, ablation_interventions, logit_diffs_under, node_sites, node_statistics
    from fracbench.evaluate.coherence import measure_coherence

    adapter, task = adapters[family], TASKS["bracket_depth"]
    sites = node_sites(adapter)
    assert [s.name for s in sites[:2]] == ["blocks.0.attn.hook_z", "blocks.0.mlp.hook_post"]
    heads = sites[0]
    assert heads.n_nodes == adapter.sites()["blocks.0.attn.hook_z"][0] and heads.group == adapter.sites()["blocks.0.attn.hook_z"][1]
    batches = PromptBatches.build(adapter, task, task.examples("train", 8, 0), 4)
    stats = node_statistics(adapter, batches, sites)
    everything = {s.name: torch.ones(s.n_nodes, dtype=torch.bool) for s in sites}
    assert torch.equal(logit_diffs_under(adapter, batches, ablation_interventions(sites, everything, stats.means)),
                       logit_diffs_under(adapter, batches))
    keep = torch.ones(heads.n_nodes, dtype=torch.bool)
    keep[1] = False
    enc = batches.batches[0][0]
    with torch.no_grad():
        z = adapter.forward(enc, capture=[heads.name], interventions=ablation_interventions(sites, {heads.name: keep}, stats.means))
    got = z.activations[heads.name][enc.attention_mask.bool()]  # [tokens, H, d_head]
    assert torch.allclose(got[:, 1], stats.means[heads.name][1].expand_as(got[:, 1]))
    full = logit_diffs(adapter, task, task.examples("test", 6, 0)).tolist()
    section, curves, _, _ = measure_coherence(adapter, task, full, RunConfig(n_test=6, seed=0, batch_size=3), n_search=8, steps=5)
    assert section.n_edges is None and section.edge_slots is None
    assert curves is None or curves.weight_noise is None


@pytest.mark.parametrize("family", FAMILIES)
def test_the_untrained_twin_is_the_same_architecture_freshly_initialized_and_seeded(adapters, family):
    check_untrained_twin(adapters[family])


@pytest.mark.parametrize("family", FAMILIES)
def test_each_latent_of_an_hf_model_is_erased_at_its_best_site(adapters, family):
    """Erasure intervenes on the residual sites the probes read: every family's adapter must take the edit there.
    (The tiny models' 128 positions hold bracket_depth's in-distribution prompts, not every split, so the run's
    stages are called here, without OOD transfer.)"""
    from fracbench.behaviour import logit_diffs
    from fracbench.evaluate.decodability import QUICK_LOOK, measure_decodability
    from fracbench.evaluate.erasure import with_erasure

    adapter, task = adapters[family], TASKS["bracket_depth"]
    full = logit_diffs(adapter, task, task.examples("test", 8, 0)).tolist()
    config = RunConfig(n_train=16, n_test=8, seed=0)
    probes = measure_decodability(adapter, task, config, settings=QUICK_LOOK)
    section = with_erasure(adapter, task, probes, full, config)
    for latent in section.latents.values():
        e = latent.erasure
        assert e.site == latent.best_site and len(e.erased) == 8 and 1 <= e.rank < latent.n_classes
        assert e.erased != full and len(e.controls) == 8  # the edit acted


def test_the_rotated_twin_of_a_gpt2_computes_the_same_logits_with_its_residual_stream_rotated(adapters, model_dirs):
    """Folded LayerNorms, a rotated residual stream and an untied unembedding: the same function; heads and neurons (the
    HuggingFace node sites) keep their values, the residual stream does not. Other families are refused by name."""
    from fracbench.models import load_model
    from fracbench.models.twins import rotated_twin

    gpt2 = HFAdapter.from_pretrained(model_dirs["gpt2"])  # its own copy: the weights are moved below
    with torch.no_grad():
        for p in gpt2.model.parameters():  # LayerNorm gains and biases away from 1 and 0, so that folding them is tested
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    twin = rotated_twin(gpt2, seed=2)
    enc = gpt2.encode(TEXTS)
    sites = ["blocks.1.attn.hook_z", "blocks.0.mlp.hook_post", "blocks.1.hook_resid_post"]
    a, b = gpt2.forward(enc, capture=sites), twin.forward(enc, capture=sites)
    assert torch.allclose(a.logits, b.logits, atol=1e-4)
    assert torch.allclose(a.activations[sites[0]], b.activations[sites[0]], atol=1e-4)
    assert torch.allclose(a.activations[sites[1]], b.activations[sites[1]], atol=1e-4)
    assert not torch.allclose(a.activations[sites[2]], b.activations[sites[2]], atol=1e-2)
    assert twin.model.lm_head.weight.data_ptr() != twin.model.transformer.wte.weight.data_ptr()  # untied
    assert load_model(f"rotated:hf:{model_dirs['gpt2']}").info.name.endswith("(rotated twin, seed 0)")
    with pytest.raises(ValueError, match="GPT-2 only.*'llama'"):
        rotated_twin(adapters["llama"], seed=0)
