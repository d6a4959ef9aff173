"""The lm-eval model ``fracbench-hf``: lm-eval's own HuggingFace model (HFLM), which also records the activations at
fracbench's TransformerLens-named sites on every forward pass lm-eval makes.

Importing this module registers it. lm-eval loads its built-in models only into an empty registry, so they are
imported first. Model arguments, besides HFLM's own:

* ``fracbench_sites``: sites separated by ``|`` (default: every ``blocks.{l}.hook_resid_post``);
* ``fracbench_activations``: a directory; each forward pass is saved there as ``batch-NNNNNN.pt`` (a dict of
  ``input_ids`` and one [B, T, ...] float32 tensor per site). Without it the batches are kept in ``.batches``.

lm-eval batches and pads the requests and, with its logits cache, runs a context shared by several choices
once, so a batch is lm-eval's forward pass, not one request: ``input_ids`` says which tokens each row holds.
"""

from __future__ import annotations

from pathlib import Path

import lm_eval.models  # noqa: F401  (the built-in models, registered before ours)
import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from ...models.hf import HFAdapter

MODEL_NAME = "fracbench-hf"


@register_model(MODEL_NAME)
class FracbenchHFLM(HFLM):
    """HFLM plus recording at fracbench's sites (through :class:`fracbench.models.hf.HFAdapter`'s site table)."""

    def __init__(self, *args, fracbench_sites: str | None = None, fracbench_activations: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        name = f"hf:{getattr(self.model.config, '_name_or_path', '') or 'model'}"
        self.adapter = HFAdapter(self.model, self.tokenizer, name=name, device=str(self.device))
        default = [s for s in self.adapter.sites() if s.endswith("hook_resid_post")]
        self.sites = [s for s in fracbench_sites.split("|") if s] if fracbench_sites else default
        self.adapter.check_sites(self.sites)
        self.activations_dir = Path(fracbench_activations) if fracbench_activations else None
        if self.activations_dir is not None:
            self.activations_dir.mkdir(parents=True, exist_ok=True)
        self.batches: list[dict[str, torch.Tensor]] = []  # kept in memory only without fracbench_activations
        self.n_batches = 0

    def _model_call(self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None):
        with self.adapter.capturing(self.sites) as store:
            logits = super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        record = {"input_ids": inps.detach().cpu(), **{site: store[site].detach().float().cpu() for site in self.sites}}
        if self.activations_dir is not None:
            torch.save(record, self.activations_dir / f"batch-{self.n_batches:06d}.pt")
        else:
            self.batches.append(record)
        self.n_batches += 1
        return logits
