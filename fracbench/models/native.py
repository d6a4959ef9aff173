"""Adapter for fracbench's own transformer (the zoo, or any checkpoint trained with it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager

import torch

from .adapter import Encoding, ForwardOutput, Intervention, ModelAdapter, ModelInfo, WeightLink, check_finite
from .tokenizer import CharTokenizer
from .transformer import Transformer


class NativeAdapter(ModelAdapter):
    def __init__(self, model: Transformer, name: str, tokenizer: CharTokenizer | None = None, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)  # evaluated, never trained, through the adapter
        self.tokenizer = tokenizer or CharTokenizer()
        cfg = model.cfg
        self.info = ModelInfo.of(model, name, "native", cfg.n_layers, cfg.d_model, cfg.n_ctx)
        self._hooks = model.hook_points()
        self._site_shapes = self._probe_site_shapes()

    def untrained_twin(self, seed: int) -> NativeAdapter:
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            twin = Transformer(self.model.cfg)
        return NativeAdapter(twin, f"{self.info.name} (untrained twin)", self.tokenizer, str(self.device))

    def encode(self, texts: Sequence[str]) -> Encoding:
        rows = [self.tokenizer.encode(t) for t in texts]
        T = max(len(r) for r in rows)
        if T > self.info.n_ctx:
            longest = max(range(len(rows)), key=lambda i: len(rows[i]))
            raise ValueError(
                f"text {longest} is {len(rows[longest]) - 1} characters; {self.info.name} reads at most {self.info.n_ctx - 1}"
            )
        ids = torch.full((len(rows), T), self.tokenizer.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        offsets = torch.zeros((len(rows), T, 2), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
            n = len(r) - 1  # token t >= 1 is character t - 1; token 0 is BOS
            offsets[i, 1 : n + 1, 0] = torch.arange(n)
            offsets[i, 1 : n + 1, 1] = torch.arange(1, n + 1)
        return Encoding(ids, mask, offsets, list(texts)).to(self.device)

    def completion_id(self, completion: str) -> int:
        if len(completion) != 1:
            raise ValueError(f"completion {completion!r} is {len(completion)} tokens for the character tokenizer; it must be one")
        return self.tokenizer.token_id(completion)

    @contextmanager
    def _hooked(self, capture: Sequence[str], interventions: Mapping[str, Intervention]):
        store: dict[str, torch.Tensor] = {}

        def make(name: str):
            edit = interventions.get(name)

            def fn(x: torch.Tensor) -> torch.Tensor:
                if edit is not None:
                    x = edit(x)
                if name in capture:
                    store[name] = x
                return x

            return fn

        names = set(capture) | set(interventions)
        try:
            for name in names:
                self._hooks[name].fn = make(name)
            yield store
        finally:
            for name in names:
                self._hooks[name].fn = None

    def forward(self, enc: Encoding, capture: Sequence[str] = (), interventions: Mapping[str, Intervention] | None = None) -> ForwardOutput:
        self.check_sites([*capture, *(interventions or {})])
        with self._hooked(capture, interventions or {}) as store:
            logits = self.model(enc.ids, enc.attention_mask)
        check_finite("logits", logits, self.info.name)
        for name, act in store.items():
            check_finite(f"activations at {name}", act, self.info.name)
        acts = {n: (a.transpose(1, 2) if n.endswith("hook_pattern") else a) for n, a in store.items()}
        return ForwardOutput(logits, acts)

    def last_token_logits(self, enc: Encoding, interventions: Mapping[str, Intervention] | None = None) -> torch.Tensor:
        """The last block past its keys and values, the final LayerNorm and the unembedding at the last token only."""
        self.check_sites(interventions or {})
        with self._hooked((), interventions or {}):
            logits = self.model(enc.ids, enc.attention_mask, last_only=True)[:, 0]
        check_finite("logits", logits, self.info.name)
        return logits

    def sites(self) -> dict[str, tuple[int, ...]]:
        return dict(self._site_shapes)

    def weight_links(self) -> list[WeightLink]:
        """Per block: q/k/v read the normalized residual, the output projection reads the v
        channels (through the attention pattern), the MLP's two matrices read the normalized
        residual and the neurons. (The LayerNorm gains scale whole columns and are left out.)"""
        links = []
        for l, block in enumerate(self.model.blocks):
            b = f"blocks.{l}"
            for proj in ("q", "k", "v"):
                links.append(WeightLink(f"{b}.attn.{proj}.weight", f"{b}.attn.hook_{proj}", f"{b}.ln1.hook_normalized",
                                        getattr(block.attn, proj).weight))
            links.append(WeightLink(f"{b}.attn.o.weight", f"{b}.hook_attn_out", f"{b}.attn.hook_v", block.attn.o.weight))
            links.append(WeightLink(f"{b}.mlp.fc_in.weight", f"{b}.mlp.hook_post", f"{b}.ln2.hook_normalized", block.mlp.fc_in.weight))
            links.append(WeightLink(f"{b}.mlp.fc_out.weight", f"{b}.hook_mlp_out", f"{b}.mlp.hook_post", block.mlp.fc_out.weight))
        return links

    def _probe_site_shapes(self) -> dict[str, tuple[int, ...]]:
        enc = self.encode(["x"])
        with torch.no_grad(), self._hooked(list(self._hooks), {}) as store:
            self.model(enc.ids, enc.attention_mask)
        shapes = {}
        for name, act in store.items():
            a = act.transpose(1, 2) if name.endswith("hook_pattern") else act  # [B, T_query, H, T_key]
            shapes[name] = (a.shape[2], -1) if name.endswith("hook_pattern") else tuple(a.shape[2:])  # -1: one per key
        return shapes
