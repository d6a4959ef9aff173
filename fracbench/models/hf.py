"""Adapter for any local HuggingFace causal-LM directory (GPT-2, GPT-NeoX/Pythia, Llama).

Sites keep TransformerLens's names. Where each one lives in a family's module tree is
a small table (:data:`FAMILIES`, the pyvene idea): a module path, whether the site is
that module's input or its output, and whether the last dimension splits into heads.
Adding a family is adding a table. Hooks only read or replace activations: nothing is
folded or centred, so with no intervention the logits are the HuggingFace model's own.
Nothing here touches the network: every load is ``local_files_only``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch.utils.hooks import RemovableHandle

from .adapter import Encoding, ForwardOutput, Intervention, ModelInfo
from .subword import SubwordAdapter, check_tokenizer, pad_id, visit_site

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class SiteRule:
    """Where a TransformerLens site lives in a HuggingFace module tree."""

    module: str  # module path; "{l}" stands for the layer index
    direction: Literal["input", "output"]  # the module's first input, or its output (first element of a tuple)
    split_heads: bool = False  # the last dim is [n_heads * d_head] and the site exposes [n_heads, d_head]
    part: tuple[int, int] = (0, 1)  # (i, k): the i-th of k equal slices of the last dim (GPT-2's c_attn holds q, k, v)


_GPT2 = {
    "hook_embed": SiteRule("transformer.wte", "output"),  # [B, T, d_model], token embedding only
    "blocks.{l}.hook_resid_pre": SiteRule("transformer.h.{l}", "input"),  # [B, T, d_model]
    "blocks.{l}.ln1.hook_normalized": SiteRule("transformer.h.{l}.ln_1", "output"),  # [B, T, d_model], what attention reads
    "blocks.{l}.attn.hook_q": SiteRule("transformer.h.{l}.attn.c_attn", "output", split_heads=True, part=(0, 3)),  # [B, T, H, d_head]
    "blocks.{l}.attn.hook_k": SiteRule("transformer.h.{l}.attn.c_attn", "output", split_heads=True, part=(1, 3)),
    "blocks.{l}.attn.hook_v": SiteRule("transformer.h.{l}.attn.c_attn", "output", split_heads=True, part=(2, 3)),
    "blocks.{l}.attn.hook_z": SiteRule("transformer.h.{l}.attn.c_proj", "input", split_heads=True),  # [B, T, H, d_head]
    "blocks.{l}.hook_attn_out": SiteRule("transformer.h.{l}.attn", "output"),  # [B, T, d_model]
    "blocks.{l}.hook_resid_mid": SiteRule("transformer.h.{l}.ln_2", "input"),  # [B, T, d_model]
    "blocks.{l}.ln2.hook_normalized": SiteRule("transformer.h.{l}.ln_2", "output"),  # [B, T, d_model], what the MLP reads
    "blocks.{l}.mlp.hook_pre": SiteRule("transformer.h.{l}.mlp.c_fc", "output"),  # [B, T, d_mlp]
    "blocks.{l}.mlp.hook_post": SiteRule("transformer.h.{l}.mlp.c_proj", "input"),  # [B, T, d_mlp], the neurons
    "blocks.{l}.hook_mlp_out": SiteRule("transformer.h.{l}.mlp", "output"),  # [B, T, d_model]
    "blocks.{l}.hook_resid_post": SiteRule("transformer.h.{l}", "output"),  # [B, T, d_model]
    "ln_final.hook_normalized": SiteRule("transformer.ln_f", "output"),  # [B, T, d_model]
}

# GPT-NeoX adds attention and MLP to the residual in parallel by default, so it has no resid_mid.
_GPT_NEOX = {
    "hook_embed": SiteRule("gpt_neox.embed_in", "output"),
    "blocks.{l}.hook_resid_pre": SiteRule("gpt_neox.layers.{l}", "input"),
    "blocks.{l}.attn.hook_z": SiteRule("gpt_neox.layers.{l}.attention.dense", "input", split_heads=True),
    "blocks.{l}.hook_attn_out": SiteRule("gpt_neox.layers.{l}.attention", "output"),
    "blocks.{l}.mlp.hook_pre": SiteRule("gpt_neox.layers.{l}.mlp.dense_h_to_4h", "output"),
    "blocks.{l}.mlp.hook_post": SiteRule("gpt_neox.layers.{l}.mlp.dense_4h_to_h", "input"),
    "blocks.{l}.hook_mlp_out": SiteRule("gpt_neox.layers.{l}.mlp", "output"),
    "blocks.{l}.hook_resid_post": SiteRule("gpt_neox.layers.{l}", "output"),
    "ln_final.hook_normalized": SiteRule("gpt_neox.final_layer_norm", "output"),
}

# Llama's MLP is gated: hook_pre is the gate's pre-activation, hook_pre_linear the up projection (as in TransformerLens).
_LLAMA = {
    "hook_embed": SiteRule("model.embed_tokens", "output"),
    "blocks.{l}.hook_resid_pre": SiteRule("model.layers.{l}", "input"),
    "blocks.{l}.attn.hook_z": SiteRule("model.layers.{l}.self_attn.o_proj", "input", split_heads=True),
    "blocks.{l}.hook_attn_out": SiteRule("model.layers.{l}.self_attn", "output"),
    "blocks.{l}.hook_resid_mid": SiteRule("model.layers.{l}.post_attention_layernorm", "input"),
    "blocks.{l}.mlp.hook_pre": SiteRule("model.layers.{l}.mlp.gate_proj", "output"),
    "blocks.{l}.mlp.hook_pre_linear": SiteRule("model.layers.{l}.mlp.up_proj", "output"),
    "blocks.{l}.mlp.hook_post": SiteRule("model.layers.{l}.mlp.down_proj", "input"),
    "blocks.{l}.hook_mlp_out": SiteRule("model.layers.{l}.mlp", "output"),
    "blocks.{l}.hook_resid_post": SiteRule("model.layers.{l}", "output"),
    "ln_final.hook_normalized": SiteRule("model.norm", "output"),
}

FAMILIES: dict[str, dict[str, SiteRule]] = {"gpt2": _GPT2, "gpt_neox": _GPT_NEOX, "llama": _LLAMA}  # config.model_type -> table

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel")  # architecture names of models with a language-model head


def check_family(model_type: str) -> None:
    if model_type not in FAMILIES:
        raise ValueError(
            f"model_type {model_type!r} is not supported; supported families: {', '.join(sorted(FAMILIES))}. "
            "Add a site table for it to fracbench.models.hf.FAMILIES"
        )


def family_sites(model_type: str, n_layers: int) -> dict[str, SiteRule]:
    """The family's table with ``{l}`` expanded for every layer; unsupported families raise ``ValueError``."""
    check_family(model_type)
    out: dict[str, SiteRule] = {}
    for template, rule in FAMILIES[model_type].items():
        layers = range(n_layers) if "{l}" in template else [0]
        for l in layers:
            out[template.format(l=l)] = dataclasses.replace(rule, module=rule.module.format(l=l))
    return out


class HFAdapter(SubwordAdapter):
    """A HuggingFace causal LM behind the adapter interface, with TransformerLens site names."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str, device: str = "cpu") -> None:
        check_tokenizer(tokenizer, model.get_input_embeddings().num_embeddings, name)
        cfg = model.config
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)  # evaluated, never trained, through the adapter
        self.tokenizer = tokenizer
        self.info = ModelInfo.of(model, name, "hf", cfg.num_hidden_layers, cfg.hidden_size, cfg.max_position_embeddings)
        self._rules = family_sites(cfg.model_type, cfg.num_hidden_layers)
        self._site_modules = {site: model.get_submodule(rule.module) for site, rule in self._rules.items()}
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters  # recent transformers; older ones give every position
        self._n_heads = cfg.num_attention_heads
        self._pad_id = pad_id(tokenizer)
        self._site_shapes = self._probe_site_shapes()

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", dtype: str = "float32") -> HFAdapter:
        """Load a local model directory (config, weights and tokenizer); never touches the network."""
        from safetensors import SafetensorError
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        path = Path(path).expanduser().resolve()
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
        _check_model_dir(path)
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        check_family(config.model_type)  # before loading any weights
        _check_causal_lm(path, config.architectures)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        try:
            model, loading = AutoModelForCausalLM.from_pretrained(
                path, local_files_only=True, dtype=DTYPES[dtype], output_loading_info=True
            )
        except SafetensorError as err:  # a truncated or damaged weights file
            raise ValueError(
                f"model directory {path}: its weights file cannot be read ({type(err).__name__}: {err}); it is truncated or "
                "damaged, copy or save it again (model.save_pretrained)"
            ) from None
        if loading["missing_keys"]:
            raise ValueError(
                f"model directory {path} lacks weights for {sorted(loading['missing_keys'])[:5]} "
                f"({len(loading['missing_keys'])} in all); they would be random. Save the full causal LM with model.save_pretrained"
            )
        return cls(model, tokenizer, name=f"hf:{path}", device=device)

    def untrained_twin(self, seed: int) -> HFAdapter:
        """The model class built from its config (HuggingFace's own initialization), in the model's dtype."""
        dtype = next(self.model.parameters()).dtype
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            twin = type(self.model)(self.model.config).to(dtype)
        return HFAdapter(twin, self.tokenizer, name=f"{self.info.name} (untrained twin)", device=str(self.device))

    # -- forward with hooks ---------------------------------------------------------------
    @contextmanager
    def capturing(self, sites: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
        """Inside the block, every forward of ``self.model``, whoever calls it (lm-eval, say), leaves its activations at
        ``sites`` in the yielded dict (the latest forward's, [B, T, ...] as :meth:`forward` captures them)."""
        self.check_sites(sites)
        store: dict[str, torch.Tensor] = {}
        handles = [self._register(site, None, True, store) for site in dict.fromkeys(sites)]
        try:
            yield store
        finally:
            for h in handles:
                h.remove()

    def last_token_logits(self, enc: Encoding, interventions: Mapping[str, Intervention] | None = None) -> torch.Tensor:
        """The unembedding only at the positions some row ends at (``logits_to_keep``, where the model's forward takes
        it): at GPT-2's vocabulary the unembedding is about a third of a forward's work, and the full logits of a
        64-prompt batch hundreds of MB. Every site, the final LayerNorm's output included, still sees every position."""
        if not self._keeps_logits:
            return super().last_token_logits(enc, interventions)
        interventions = dict(interventions or {})
        self.check_sites(interventions)
        positions, row_at = torch.unique(enc.last_index, return_inverse=True)  # the distinct last positions, sorted
        logits = self._run(enc, (), interventions, logits_to_keep=positions).logits  # [B, n_positions, vocab]
        return logits[torch.arange(len(logits), device=logits.device), row_at]

    def _run(self, enc: Encoding, capture: Sequence[str], interventions: dict[str, Intervention],
             logits_to_keep: torch.Tensor | None = None) -> ForwardOutput:
        """The forward with hooks on the (already checked) sites, removed whatever happens; the logits at every
        position, or at ``logits_to_keep`` alone."""
        store: dict[str, torch.Tensor] = {}
        handles: list[RemovableHandle] = []
        keep = {} if logits_to_keep is None else {"logits_to_keep": logits_to_keep}
        try:
            for site in dict.fromkeys([*capture, *interventions]):
                handles.append(self._register(site, interventions.get(site), site in capture, store))
            logits = self.model(input_ids=enc.ids, attention_mask=enc.attention_mask, use_cache=False, **keep).logits
        finally:
            for h in handles:
                h.remove()
        return self._output(logits, store, capture)

    def _register(self, site: str, edit: Intervention | None, keep: bool, store: dict[str, torch.Tensor]) -> RemovableHandle:
        """A hook on the site's module that captures and/or replaces the site's activation."""
        rule, module = self._rules[site], self._site_modules[site]

        def visit(x: torch.Tensor) -> torch.Tensor | None:
            i, k = rule.part
            width = x.shape[-1] // k
            sliced = x[..., i * width:(i + 1) * width] if k > 1 else x
            act = sliced.unflatten(-1, (self._n_heads, -1)) if rule.split_heads else sliced  # [B, T, H, d_head] or [B, T, d]
            new = visit_site(site, act, edit, keep, store)
            if new is None:
                return None
            new = new.flatten(-2) if rule.split_heads else new
            return torch.cat([x[..., :i * width], new, x[..., (i + 1) * width:]], dim=-1) if k > 1 else new

        if rule.direction == "input":

            def pre_hook(_module, args, kwargs):
                new = visit(args[0] if args else kwargs["hidden_states"])
                if new is None:
                    return None
                return ((new, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": new})

            return module.register_forward_pre_hook(pre_hook, with_kwargs=True)

        def hook(_module, _args, output):
            new = visit(output[0] if isinstance(output, tuple) else output)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return module.register_forward_hook(hook)

    def sites(self) -> dict[str, tuple[int, ...]]:
        return dict(self._site_shapes)

    def _probe_site_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each site's per-position shape, read off one forward of a one-token input."""
        ids = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        enc = Encoding(ids, torch.ones_like(ids), torch.zeros((1, 1, 2), dtype=torch.long, device=self.device), [""])
        with torch.no_grad():
            acts = self._run(enc, list(self._rules), {}).activations
        return {site: tuple(a.shape[2:]) for site, a in acts.items()}


def _check_model_dir(path: Path) -> None:
    """Fail early, with the fix, on a path that cannot hold a usable model."""
    if not path.exists():
        raise FileNotFoundError(f"model directory {path} does not exist")
    if not path.is_dir():
        raise ValueError(f"{path} is a file; pass the directory that holds config.json, the weights and the tokenizer")
    if not (path / "config.json").is_file():
        raise ValueError(f"model directory {path} has no config.json; save the model with model.save_pretrained({str(path)!r})")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise ValueError(
            f"model directory {path} has no tokenizer (tokenizer.json / tokenizer_config.json); "
            f"save one with tokenizer.save_pretrained({str(path)!r})"
        )


def _check_causal_lm(path: Path, architectures: list[str] | None) -> None:
    if architectures and not any(a.endswith(CAUSAL_LM_SUFFIXES) for a in architectures):
        raise ValueError(
            f"model directory {path} holds {architectures}, not a causal language model (expected an architecture "
            f"ending in {' or '.join(CAUSAL_LM_SUFFIXES)}); save the model loaded with AutoModelForCausalLM"
        )
