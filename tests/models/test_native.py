"""The native transformer, its adapter, weight-sparse training and zoo checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fracbench.models import zoo
from fracbench.models.native import NativeAdapter
from fracbench.training.sparsity import density_at, sparsify_, topk_mask, weight_density
from fracbench.models.tokenizer import CharTokenizer
from fracbench.models.zoo import Recipe
from fracbench.training import build_corpus, train
from fracbench.models.transformer import Transformer, TransformerConfig, abs_topk
from tests.conftest import check_untrained_twin

TINY = {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_mlp": 64}


@pytest.fixture(scope="module")
def adapter() -> NativeAdapter:
    torch.manual_seed(0)
    return NativeAdapter(Transformer(TransformerConfig(vocab_size=len(CharTokenizer()), **TINY)), "tiny")


def test_every_transformerlens_site_exists_with_its_shape(adapter: NativeAdapter) -> None:
    sites = adapter.sites()
    for layer in range(2):
        assert sites[f"blocks.{layer}.hook_resid_pre"] == (32,)
        assert sites[f"blocks.{layer}.attn.hook_q"] == (2, 16)
        assert sites[f"blocks.{layer}.attn.hook_z"] == (2, 16)
        assert sites[f"blocks.{layer}.mlp.hook_post"] == (64,)
        assert sites[f"blocks.{layer}.hook_resid_post"] == (32,)
    assert "hook_embed" in sites and "ln_final.hook_normalized" in sites


def test_hook_points_are_identities(adapter: NativeAdapter) -> None:
    enc = adapter.encode(["x = [1, 2]", "y = 'ab"])
    plain = adapter.model(enc.ids, enc.attention_mask)
    hooked = adapter.forward(enc, capture=list(adapter.sites()), interventions={"blocks.0.hook_mlp_out": lambda x: x})
    assert torch.equal(plain, hooked.logits)
    assert torch.equal(hooked.activations["blocks.0.hook_resid_post"], hooked.activations["blocks.1.hook_resid_pre"])
    assert hooked.activations["blocks.1.attn.hook_pattern"].shape == (2, enc.ids.shape[1], 2, enc.ids.shape[1])


def test_interventions_change_the_output_and_are_removed_afterwards(adapter: NativeAdapter) -> None:
    enc = adapter.encode(["x = [1, 2]"])
    before = adapter.forward(enc).logits
    zeroed = adapter.forward(enc, interventions={"blocks.1.mlp.hook_post": torch.zeros_like}).logits
    assert not torch.allclose(before, zeroed)
    assert torch.equal(adapter.forward(enc).logits, before)


def test_an_edited_attention_pattern_reaches_the_output_and_a_copied_one_matches_the_fused_kernel(adapter: NativeAdapter) -> None:
    enc = adapter.encode(["x = [1, 2]", "y = 'ab"])
    plain = adapter.forward(enc).logits  # the fused kernel: no pattern is materialized
    copied = adapter.forward(enc, interventions={"blocks.1.attn.hook_pattern": torch.clone}).logits  # explicit softmax path
    uniform = adapter.forward(enc, interventions={"blocks.1.attn.hook_pattern": lambda p: (p > 0) / (p > 0).sum(-1, keepdim=True)}).logits
    assert torch.allclose(plain, copied, atol=1e-5)
    assert not torch.allclose(plain, uniform, atol=1e-3)


def test_training_mode_computes_the_same_function_as_evaluation() -> None:
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=len(CharTokenizer()), **TINY))
    ids = torch.randint(0, 50, (3, 12))
    with torch.no_grad():
        evaluated = model.eval()(ids)
        trained = model.train()(ids)
    assert torch.allclose(evaluated, trained, atol=1e-5)


def test_misspelled_site_suggests_the_right_one(adapter: NativeAdapter) -> None:
    with pytest.raises(KeyError, match="did you mean 'blocks.0.mlp.hook_post'"):
        adapter.forward(adapter.encode(["x"]), capture=["blocks.0.mlp.hook_pots"])


def test_padding_does_not_change_a_text_s_logits(adapter: NativeAdapter) -> None:
    alone = adapter.forward(adapter.encode(["ab"])).logits[0]
    padded = adapter.forward(adapter.encode(["ab", "a much longer text"])).logits[0, :3]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_offsets_map_each_character_to_its_own_token(adapter: NativeAdapter) -> None:
    enc = adapter.encode(["ab\ncd", "x"])
    assert enc.token_positions(0, [0, 2, 4]) == [1, 3, 5]
    assert enc.last_index.tolist() == [5, 1]
    with pytest.raises(ValueError, match="covered by no token"):
        enc.token_positions(1, [3])


def test_characters_outside_the_alphabet_and_long_completions_are_refused(adapter: NativeAdapter) -> None:
    with pytest.raises(ValueError, match="not in the native tokenizer's alphabet"):
        adapter.encode(["x = 'é'"])
    with pytest.raises(ValueError, match="it must be one"):
        adapter.completion_id(".add(")
    with pytest.raises(ValueError, match="reads at most 319"):
        adapter.encode(["x" * 400])


def test_nan_weights_raise_instead_of_scoring() -> None:
    broken = NativeAdapter(Transformer(TransformerConfig(vocab_size=len(CharTokenizer()), **TINY)), "broken")
    with torch.no_grad():
        broken.model.unembed.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite"):
        broken.forward(broken.encode(["x"]))


def test_abs_topk_keeps_the_largest_magnitudes() -> None:
    x = torch.tensor([[0.1, -3.0, 2.0, -0.5]])
    assert abs_topk(x, 2).tolist() == [[0.0, -3.0, 2.0, 0.0]]


def test_topk_mask_keeps_the_density_and_a_minimum_per_neuron() -> None:
    torch.manual_seed(0)
    w = torch.randn(64, 32)
    w[3] *= 1e-3  # a row that global top-k would empty
    mask = topk_mask(w, 0.05, min_per_neuron=4)
    assert mask[3].sum() >= 4 and (mask.sum(1) >= 4).all() and (mask.sum(0) >= 4).all()
    assert mask.float().mean() < 0.05 + 4 * (64 + 32) / w.numel()


def test_density_anneals_from_dense_to_target_over_the_first_half() -> None:
    assert density_at(0, 100, 0.1) == 1.0
    assert density_at(25, 100, 0.1) == pytest.approx(0.55)
    assert density_at(50, 100, 0.1) == density_at(99, 100, 0.1) == 0.1


def test_sparsify_reaches_the_target_density() -> None:
    torch.manual_seed(0)
    mats = [torch.randn(128, 128), torch.randn(256, 64)]
    sparsify_(mats, 0.2, min_per_neuron=0)
    assert weight_density(mats) == pytest.approx(0.2, abs=0.01)


def tiny_recipe(**kw) -> Recipe:
    return Recipe("tiny", "test recipe", config=TINY, steps=6, batch_size=2, seq_len=64, examples_per_task=20, **kw)


def test_training_is_deterministic_and_sparse_training_is_sparse() -> None:
    a = train(tiny_recipe(density=0.25), progress=False)
    b = train(tiny_recipe(density=0.25), progress=False)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    assert weight_density(a.weight_matrices()) < 0.3


def test_corpus_cue_setting_controls_the_spurious_cue() -> None:
    tok = CharTokenizer()
    honest, _ = build_corpus(tiny_recipe(), tok)
    shortcut, _ = build_corpus(tiny_recipe(corpus_cue="agree"), tok)
    assert honest != shortcut and len(honest) == len(shortcut)


def test_checkpoint_round_trip(tmp_path) -> None:
    recipe = dataclasses.replace(tiny_recipe(), train=False)
    model = train(recipe, progress=False)
    path = tmp_path / "tiny.safetensors"
    zoo.save_checkpoint(model, recipe, path, seconds=0.0)
    loaded, meta = zoo.load_checkpoint(path)
    assert loaded.cfg == model.cfg and '"name": "tiny"' in meta["recipe"]
    for p, q in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(p, q)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("name", zoo.RECIPES.names())
def test_zoo_checkpoints_ship_and_load(name: str) -> None:
    adapter = zoo.load(name)
    assert adapter.info.name == f"zoo:{name}" and adapter.info.n_params > 0
    assert adapter.forward(adapter.encode(["x = 'a"])).logits.shape[-1] == len(CharTokenizer())


def test_the_untrained_twin_is_the_same_architecture_freshly_initialized_and_seeded(adapter: NativeAdapter) -> None:
    check_untrained_twin(adapter)
    assert adapter.untrained_twin(7).model.cfg == adapter.model.cfg


def test_a_magnitude_pruned_twin_zeroes_the_smallest_weights_of_each_matrix(tiny_adapter: NativeAdapter) -> None:
    from fracbench.models.twins import magnitude_pruned_twin

    twin = magnitude_pruned_twin(tiny_adapter, 0.5)
    for original, pruned in zip(tiny_adapter.model.weight_matrices(), twin.model.weight_matrices()):
        kept = pruned != 0
        assert abs(kept.float().mean().item() - 0.5) <= 1 / original.numel() + 1e-6
        assert torch.equal(pruned[kept], original[kept])  # the survivors are untouched
        assert original[~kept].abs().max() <= original[kept].abs().min()  # and they are the largest
    assert twin.info.weights_sha256 != tiny_adapter.info.weights_sha256
    with pytest.raises(ValueError, match=r"fraction .* must be in \[0, 1\)"):
        magnitude_pruned_twin(tiny_adapter, 1.0)
