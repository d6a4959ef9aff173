"""Adapter for a TransformerLens ``HookedTransformer`` passed from Python (TransformerLens 3; 4.0 removed the class).

Its own hook points are the sites: TransformerLens's names are the ones fracbench uses everywhere, so every site a
``HookedTransformer`` has (but the attention pattern and scores, which are [B, H, T, T] rather than per position) is
read and replaced through ``run_with_hooks``, and circuits are made of its heads (``attn.hook_z``) and MLP neurons
(``mlp.hook_post``), as for HuggingFace models. The model's tokenizer (a HuggingFace fast tokenizer) gives the
character offsets; a model whose config asks for a BOS token (``default_prepend_bos``) gets one in front of every
prompt, as ``model.to_tokens`` would put it. Nothing imports ``transformer_lens`` here: the model is used through its
own methods, so this module costs nothing to users who never pass one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .adapter import Encoding, ForwardOutput, Intervention, ModelInfo
from .subword import SubwordAdapter, check_tokenizer, pad_id, visit_site

NOT_PER_POSITION = ("hook_pattern", "hook_attn_scores")  # [B, H, T_query, T_key]: not sites of one token position
HOOKED_METHODS = ("run_with_hooks", "hook_dict", "cfg")  # what a HookedTransformer-like model must have


def is_hooked_transformer(model: Any) -> bool:
    """Whether ``model`` looks like a TransformerLens ``HookedTransformer`` (duck-typed: TransformerLens is not imported)."""
    return isinstance(model, torch.nn.Module) and all(hasattr(model, a) for a in HOOKED_METHODS)


class LensAdapter(SubwordAdapter):
    """A ``HookedTransformer`` behind the adapter interface, read and edited at its own hook points."""

    def __init__(self, model: torch.nn.Module, name: str | None = None, device: str | None = None) -> None:
        if not is_hooked_transformer(model):
            raise TypeError(f"{type(model).__name__} is not a TransformerLens HookedTransformer (it lacks "
                            f"{', '.join(a for a in HOOKED_METHODS if not hasattr(model, a))})")
        cfg = model.cfg
        name = name or f"tl:{cfg.model_name}"
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None:
            raise ValueError(f"{name}: the HookedTransformer has no tokenizer; build it with HookedTransformer(cfg, tokenizer=...) "
                             "(a HuggingFace fast tokenizer), or set model.set_tokenizer(...)")
        check_tokenizer(tokenizer, cfg.d_vocab, name)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval().requires_grad_(False)  # evaluated, never trained, through the adapter
        self.tokenizer = tokenizer
        self._pad_id = pad_id(tokenizer)
        bos = tokenizer.bos_token_id
        self.add_special_tokens = False  # TransformerLens's tokenizer always adds BOS; to_tokens keeps it only by the config
        self.prefix_ids = (bos,) if getattr(cfg, "default_prepend_bos", False) and bos is not None else ()
        self.info = ModelInfo.of(model, name, "tl", cfg.n_layers, cfg.d_model, cfg.n_ctx)
        self._site_shapes = self._probe_site_shapes()

    def untrained_twin(self, seed: int) -> LensAdapter:
        """The same config and tokenizer, TransformerLens's own initialization, seeded."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            twin = type(self.model)(self.model.cfg, tokenizer=self.tokenizer)
        return LensAdapter(twin, f"{self.info.name} (untrained twin)", str(self.device))

    def _run(self, enc: Encoding, capture: Sequence[str], interventions: dict[str, Intervention]) -> ForwardOutput:
        store: dict[str, torch.Tensor] = {}

        def hook_for(site: str):
            edit, keep = interventions.get(site), site in capture
            return lambda act, hook: visit_site(site, act, edit, keep, store)

        hooks = [(site, hook_for(site)) for site in dict.fromkeys([*capture, *interventions])]
        logits = self.model.run_with_hooks(enc.ids, fwd_hooks=hooks, attention_mask=enc.attention_mask, return_type="logits")
        return self._output(logits, store, capture)

    def sites(self) -> dict[str, tuple[int, ...]]:
        return dict(self._site_shapes)

    def _probe_site_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each per-position site's shape, read off one forward of a [2, 3] input at every hook point (hook points the
        config leaves unused, such as ``attn.hook_result`` without ``use_attn_result``, never fire and are not sites)."""
        B, T = 2, 3
        ids = torch.zeros((B, T), dtype=torch.long, device=self.device)
        names = [n for n in self.model.hook_dict if not n.endswith(NOT_PER_POSITION)]
        enc = Encoding(ids, torch.ones_like(ids), torch.zeros((B, T, 2), dtype=torch.long, device=self.device), [""] * B)
        with torch.no_grad():
            acts = self._run(enc, names, {}).activations
        return {n: tuple(a.shape[2:]) for n, a in acts.items() if a.is_floating_point() and tuple(a.shape[:2]) == (B, T)}
