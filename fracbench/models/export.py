"""A native model as a HuggingFace GPT-2 directory (``fracbench zoo export``): the same logits, the same token ids.

The native architecture is GPT-2's (learned positions, pre-LayerNorm blocks, exact GELU, a final LayerNorm), except
that its unembedding has a bias and GPT-2's ``lm_head`` has none. The bias is folded into the unembedding's weights
exactly, through a direction the final LayerNorm's output never uses: the normalized vector n sums to 0, so with the
final norm's gain g and bias b, ``W_U + u (1/g)ᵀ`` maps ``g ⊙ n + b`` to ``W_U (g ⊙ n + b) + u · Σ b/g``; with
``u = b_U / Σ(b/g)`` that is the native logits, and the final norm's output (``ln_final.hook_normalized``) is
unchanged. The export refuses where this does not hold (two sub-networks with a router, AbsTopK neurons, a bias
with Σ b/g = 0) and checks the written model's logits against the native model's before it keeps anything.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .native import NativeAdapter
from .tokenizer import BOS, PAD, CharTokenizer
from .transformer import Transformer

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

LOGIT_TOLERANCE = 1e-4  # the exported model's logits against the native model's: absolute and relative (float32 rounding)
MIN_FOLD = 1e-3  # |Σ b/g| below this would divide the unembedding bias into weights too large to keep float precision
CHECK_TEXTS = ('x = "a[1]"\n', "def f(a, b):\n    return [a, {b: (1, 2)}]\n", "s = set()\ns.add(", "")  # logits compared here
PROVENANCE_FILE = "fracbench_export.json"


def char_tokenizer(native: CharTokenizer | None = None) -> PreTrainedTokenizerFast:
    """The native tokenizer as a HuggingFace fast tokenizer: the same characters get the same ids, BOS in front, and a
    character outside the alphabet reads as padding, which the adapter refuses as an unknown token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    native = native or CharTokenizer()
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(native.vocab)}, unk_token=PAD))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character its own token
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, native.bos_id)])
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, pad_token=PAD, unk_token=PAD)


def check_exportable(model: Transformer, name: str) -> None:
    """Refuse, naming why, a native model that GPT-2 cannot compute exactly."""
    cfg = model.cfg
    if cfg.n_groups != 1 or cfg.route_at:
        raise ValueError(f"{name} has {cfg.n_groups} sub-networks with grouped LayerNorms and a router, which GPT-2 cannot "
                         "express; export a model with one network (dense, sparse, shortcut, random, pruned, compiled)")
    if cfg.act_topk:
        raise ValueError(f"{name} keeps the top {cfg.act_topk} MLP neurons per position (AbsTopK), which GPT-2 cannot express")
    if bool(model.unembed.bias.detach().any()):
        gain = model.ln_final.weight.detach()
        if not bool(gain.ne(0).all()):
            raise ValueError(f"{name}: its unembedding bias cannot be folded into GPT-2's bias-free lm_head (a gain of the "
                             "final LayerNorm is 0)")
        fold = float((model.ln_final.bias.detach() / gain).sum())
        if abs(fold) < MIN_FOLD:
            raise ValueError(f"{name}: its unembedding bias cannot be folded into GPT-2's bias-free lm_head (the final "
                             f"LayerNorm's Σ bias/gain is {fold:.2e}, below {MIN_FOLD:g})")


@torch.no_grad()
def to_gpt2(model: Transformer, name: str = "the model") -> GPT2LMHeadModel:
    """A ``GPT2LMHeadModel`` that computes ``model``'s logits (float32, eval mode)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    check_exportable(model, name)
    cfg = model.cfg
    eps = {m.eps for m in (*[b.ln1 for b in model.blocks], *[b.ln2 for b in model.blocks], model.ln_final)}
    if len(eps) != 1:
        raise ValueError(f"{name}: its LayerNorms use different eps {sorted(eps)}; GPT-2 has one layer_norm_epsilon")
    config = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                        n_head=cfg.n_heads, n_inner=cfg.d_mlp, activation_function="gelu", layer_norm_epsilon=eps.pop(),
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
                        bos_token_id=cfg.bos_id, eos_token_id=cfg.bos_id, pad_token_id=1, architectures=["GPT2LMHeadModel"])
    gpt2 = GPT2LMHeadModel(config).eval()
    body = gpt2.transformer
    body.wte.weight.copy_(model.embed.weight)
    body.wpe.weight.copy_(model.pos_embed.weight)
    for block, h in zip(model.blocks, body.h):
        attn = block.attn
        _copy_norm(block.ln1, h.ln_1)
        _copy_norm(block.ln2, h.ln_2)
        h.attn.c_attn.weight.copy_(torch.cat([attn.q.weight.T, attn.k.weight.T, attn.v.weight.T], dim=1))  # Conv1D: x @ W
        h.attn.c_attn.bias.copy_(torch.cat([attn.q.bias, attn.k.bias, attn.v.bias]))
        h.attn.c_proj.weight.copy_(attn.o.weight.T)
        h.attn.c_proj.bias.copy_(attn.o.bias)
        h.mlp.c_fc.weight.copy_(block.mlp.fc_in.weight.T)
        h.mlp.c_fc.bias.copy_(block.mlp.fc_in.bias)
        h.mlp.c_proj.weight.copy_(block.mlp.fc_out.weight.T)
        h.mlp.c_proj.bias.copy_(block.mlp.fc_out.bias)
    _copy_norm(model.ln_final, body.ln_f)
    gpt2.lm_head.weight.copy_(folded_unembedding(model))
    return gpt2


def folded_unembedding(model: Transformer) -> torch.Tensor:
    """The unembedding's weights [vocab, d_model] with its bias folded in through the final norm (module docstring)."""
    w, bias = model.unembed.weight.detach().double(), model.unembed.bias.detach().double()
    if not bool(bias.any()):
        return model.unembed.weight.detach().clone()
    gain, shift = model.ln_final.weight.detach().double(), model.ln_final.bias.detach().double()
    u = bias / (shift / gain).sum()
    return (w + u[:, None] * (1 / gain)[None, :]).to(model.unembed.weight.dtype)


def export(adapter: NativeAdapter, directory: str | Path) -> Path:
    """Write ``adapter``'s model as a HuggingFace directory (config, safetensors weights, tokenizer, and
    :data:`PROVENANCE_FILE`), after checking its logits against the native model's. Nothing is written at
    ``directory`` unless all of it is: the files go to a sibling temporary directory that is then renamed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(directory).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty directory; give a new directory to export into")
    name = adapter.info.name
    gpt2 = to_gpt2(copy.deepcopy(adapter.model).cpu().float(), name)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        gpt2.save_pretrained(staging, safe_serialization=True)
        char_tokenizer(adapter.tokenizer).save_pretrained(staging)
        reloaded = AutoModelForCausalLM.from_pretrained(staging, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(staging, local_files_only=True)
        deviation = logit_deviation(adapter, reloaded, tokenizer)
        if deviation > LOGIT_TOLERANCE:
            raise RuntimeError(f"{name}: the exported GPT-2's logits differ from the native model's by up to {deviation:.2e} "
                               f"(tolerance {LOGIT_TOLERANCE:g}); nothing was written")
        (staging / PROVENANCE_FILE).write_text(json.dumps({
            "source": name, "architecture": "GPT2LMHeadModel", "config": adapter.model.cfg.to_dict(),
            "max_logit_deviation": deviation, "check_texts": list(CHECK_TEXTS),
            "unembedding_bias": "folded into lm_head through the final LayerNorm (fracbench.models.export)",
        }, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


@torch.no_grad()
def logit_deviation(adapter: NativeAdapter, gpt2: torch.nn.Module, tokenizer) -> float:
    """The largest difference between the native model's logits and ``gpt2``'s, scaled by max(1, |logit|), over
    :data:`CHECK_TEXTS` tokenized by ``tokenizer`` (which must give the native ids)."""
    enc = adapter.encode(list(CHECK_TEXTS))
    ids = tokenizer(list(CHECK_TEXTS), padding=True, return_tensors="pt")
    if not torch.equal(ids["input_ids"] * ids["attention_mask"], enc.ids.cpu() * enc.attention_mask.cpu()):
        raise RuntimeError(f"{adapter.info.name}: the exported tokenizer gives other ids than the native one")
    native = adapter.forward(enc).logits.cpu().float()
    enc = enc.to("cpu")
    exported = gpt2(input_ids=enc.ids, attention_mask=enc.attention_mask).logits
    real = enc.attention_mask.bool()
    return float(((native - exported).abs() / native.abs().clamp_min(1.0))[real].max())


def _copy_norm(native: torch.nn.Module, hf: torch.nn.Module) -> None:
    hf.weight.copy_(native.weight)
    hf.bias.copy_(native.bias)
