"""TransformerLens models passed from Python: a HookedTransformer built here from a config (no downloads), given the
weights of a tiny HuggingFace GPT-2, runs through its own hook points and computes what the HuggingFace adapter
computes on the same weights."""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import AutoTokenizer

from fracbench.behaviour import logit_diffs
from fracbench.circuits import node_sites
from fracbench.config import RunConfig
from fracbench.evaluate import evaluate
from fracbench.executors import RayExecutor
from fracbench.models import as_adapter
from fracbench.models.hf import HFAdapter
from fracbench.models.lens import LensAdapter
from fracbench.runner import run
from fracbench.tasks import TASKS
from tests.conftest import check_untrained_twin
from tests.models.test_hf import N_CTX, TEXTS, _byte_level_tokenizer, _corpus, _model

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # TransformerLens 3 announces HookedTransformer's removal in 4
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """The byte-level BPE tokenizer, saved and loaded back (TransformerLens re-creates a tokenizer from its path)."""
    d = tmp_path_factory.mktemp("tokenizer")
    _byte_level_tokenizer(_corpus()).save_pretrained(d)
    return AutoTokenizer.from_pretrained(d)


def _hooked(hf_model, tokenizer, prepend_bos: bool) -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=N_CTX, d_head=8, n_heads=4, d_mlp=128, d_vocab=len(tokenizer),
                                  act_fn="gelu_new", normalization_type="LN", default_prepend_bos=prepend_bos, model_name="tiny-gpt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(cfg, tokenizer=tokenizer)
    # the weights as they are (nothing folded or centred), so the logits are the HuggingFace model's
    model.load_and_process_state_dict(convert_gpt2_weights(hf_model, cfg), fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False)
    return model


@pytest.fixture(scope="module")
def pair(tokenizer) -> tuple[HFAdapter, HookedTransformer]:
    hf_model = _model("gpt2", tokenizer)
    return HFAdapter(hf_model, tokenizer, "hf:tiny-gpt2"), _hooked(hf_model, tokenizer, prepend_bos=False)


def test_the_same_weights_give_the_huggingface_models_logits(pair):
    hf, hooked = pair
    lens = as_adapter(hooked)
    assert isinstance(lens, LensAdapter) and lens.info.kind == "tl" and lens.info.name == "tl:tiny-gpt2"
    a, b = hf.encode(TEXTS), lens.encode(TEXTS)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.offsets, b.offsets)
    real = a.attention_mask.bool()
    assert torch.allclose(hf.forward(a).logits[real], lens.forward(b).logits[real], atol=1e-5)
    task = TASKS["bracket_depth"]
    examples = task.examples("test", 24, 0)
    assert torch.allclose(logit_diffs(hf, task, examples), logit_diffs(lens, task, examples), atol=1e-5)


def test_sites_are_its_own_per_position_hook_points(pair):
    lens = as_adapter(pair[1])
    sites = lens.sites()
    assert sites["blocks.0.attn.hook_z"] == (4, 8) and sites["blocks.1.mlp.hook_post"] == (128,)
    assert sites["blocks.0.hook_resid_mid"] == (32,) and "blocks.0.ln1.hook_normalized" in sites
    assert not any(name.endswith(("hook_pattern", "hook_attn_scores")) for name in sites)  # [B, H, T, T], not per position
    assert "blocks.0.attn.hook_result" not in sites  # never fires without use_attn_result
    assert [s.name for s in node_sites(lens)][:2] == ["blocks.0.attn.hook_z", "blocks.0.mlp.hook_post"]  # heads and neurons
    assert set(sites) <= set(pair[1].hook_dict)


def test_an_intervention_at_its_hook_point_does_what_it_does_on_the_huggingface_model(pair):
    hf, hooked = pair
    lens = as_adapter(hooked)
    enc = lens.encode(TEXTS)
    site = "blocks.0.mlp.hook_post"
    zero = {site: lambda x: 0 * x}
    got = lens.forward(enc, capture=[site, "blocks.1.hook_resid_pre"], interventions=zero)
    want = hf.forward(hf.encode(TEXTS), capture=[site, "blocks.1.hook_resid_pre"], interventions=zero)
    real = enc.attention_mask.bool()
    assert not got.activations[site].any() and got.activations[site].shape[:2] == enc.ids.shape
    assert torch.allclose(got.activations["blocks.1.hook_resid_pre"][real], want.activations["blocks.1.hook_resid_pre"][real], atol=1e-5)
    assert torch.allclose(got.logits[real], want.logits[real], atol=1e-5)
    assert not torch.allclose(got.logits[real], lens.forward(enc).logits[real], atol=1e-3)  # the intervention did something
    with pytest.raises(ValueError, match=r"returned \(1,\)"):
        lens.forward(enc, interventions={site: lambda x: torch.zeros(1)})
    assert not hooked.hook_dict[site].fwd_hooks  # removed, even after the failure


def test_a_model_that_prepends_bos_gets_it_in_front_of_every_prompt_as_to_tokens_puts_it(pair, tokenizer):
    hooked = _hooked(_model("gpt2", tokenizer), tokenizer, prepend_bos=True)
    lens = as_adapter(hooked)
    enc = lens.encode(TEXTS)
    for row, text in enumerate(TEXTS):
        n = int(enc.attention_mask[row].sum())
        assert enc.ids[row, :n].tolist() == hooked.to_tokens(text)[0].tolist()
        assert enc.offsets[row, 0].tolist() == [0, 0]  # BOS stands for no character
        assert enc.token_positions(row, [0])[0] == 1
    last = enc.last_index
    own = torch.stack([hooked(text)[0, -1] for text in TEXTS])
    assert torch.allclose(lens.forward(enc).logits[torch.arange(len(TEXTS)), last], own, atol=1e-5)  # right padding changes nothing


def test_the_untrained_twin_is_the_same_config_freshly_initialized_and_seeded(pair):
    check_untrained_twin(as_adapter(pair[1]))


def test_evaluate_and_run_take_a_hooked_transformer_and_measure_what_its_huggingface_twin_measures(pair, tmp_path):
    """Every number of a job, on the two adapters of the same weights, equal up to float rounding (the logits differ in
    the last bits); only the untrained twin differs: TransformerLens initializes weights its own way."""
    hf, hooked = pair
    config = RunConfig(tasks="bracket_depth", n_test=16, n_train=32, restarts=1, batch_size=8)
    on_lens = evaluate(hooked, TASKS["bracket_depth"], config).model_dump()
    on_hf = evaluate(hf, TASKS["bracket_depth"], config).model_dump()
    for latent in on_hf["probes"]["latents"].values():
        assert latent["sites"]  # the trained model's probes, at every residual site
    _assert_close(on_lens, on_hf, skip="untrained")
    result, path = run(hooked, config, tmp_path, progress=False)
    assert path.is_file() and result.model.kind == "tl" and result.provenance.dtype == "float32"
    assert result.tasks["bracket_depth"].scores.verdict is not None


def _assert_close(got, want, skip: str, path: str = "") -> None:
    """Nested results equal, numbers within float rounding, keys named ``skip`` left out."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), path
        for key in want:
            if key != skip:
                _assert_close(got[key], want[key], skip, f"{path}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_close(g, w, skip, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), path
    else:
        assert got == want, path


def test_what_is_not_a_model_is_refused_naming_what_is_taken(pair):
    with pytest.raises(TypeError, match="TransformerLens HookedTransformer"):
        as_adapter(torch.nn.Linear(2, 2))
    lens = as_adapter(pair[1])
    assert as_adapter(lens) is lens and as_adapter(lens, device="cpu") is lens  # an adapter is taken as it is


def test_a_hooked_transformer_without_a_tokenizer_is_refused_with_how_to_give_one(pair):
    bare = type(pair[1])(pair[1].cfg)
    with pytest.raises(ValueError, match=r"has no tokenizer; build it with HookedTransformer\(cfg, tokenizer=...\)"):
        LensAdapter(bare)


def test_a_model_in_memory_is_not_sent_to_another_executor(pair, tmp_path):
    with pytest.raises(ValueError, match="a model in memory is measured in this process; give a model spec"):
        run(pair[1], RunConfig(tasks="bracket_depth", n_test=8), tmp_path, progress=False, executor=RayExecutor.__new__(RayExecutor))
    assert not any(tmp_path.iterdir())  # refused before anything was written
