"""The model adapter: the one interface through which fracbench touches any model.

Four methods: :meth:`encode` (tokenize with character offsets), :meth:`completion_id`
(a completion's single token), :meth:`forward` (logits, with activations captured
and interventions applied at named sites) and :meth:`sites`. Everything
downstream — behaviour, probes, circuits, perturbations — uses only these.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

Intervention = Callable[[torch.Tensor], torch.Tensor]  # activation at a site -> replacement, same shape


@dataclass(frozen=True)
class ModelInfo:
    """Who a model is, for results files: enough to tell two models apart and find them again."""

    name: str  # e.g. "zoo:dense" or "hf:/models/pythia-70m"
    kind: str  # "native", "hf" or "tl"
    n_params: int
    weights_sha256: str  # hash of every parameter tensor, in name order
    n_layers: int
    d_model: int
    n_ctx: int  # longest input, in tokens, the model accepts

    @classmethod
    def of(cls, module: torch.nn.Module, name: str, kind: str, n_layers: int, d_model: int, n_ctx: int) -> ModelInfo:
        """The info of ``module``: its parameter count and weights hash read off it."""
        return cls(name, kind, sum(p.numel() for p in module.parameters()), weights_sha256(module), n_layers, d_model, n_ctx)


@dataclass
class Encoding:
    """A right-padded batch of tokenized texts, with where each token came from in its text."""

    ids: torch.Tensor  # [B, T] token ids
    attention_mask: torch.Tensor  # [B, T] 1 on real tokens, 0 on padding
    offsets: torch.Tensor  # [B, T, 2] character span [start, end) of each token; (0, 0) for special tokens
    texts: list[str] = field(repr=False)

    @property
    def last_index(self) -> torch.Tensor:
        """[B] index of each text's last real token: where its next token is predicted."""
        return self.attention_mask.sum(dim=1) - 1

    def to(self, device: torch.device | str) -> Encoding:
        return Encoding(self.ids.to(device), self.attention_mask.to(device), self.offsets.to(device), self.texts)

    def repeat(self, times: int) -> Encoding:
        """The batch stacked ``times`` times (rows [k B, (k + 1) B) are copy k): one forward pass for several masks."""
        return Encoding(self.ids.repeat(times, 1), self.attention_mask.repeat(times, 1), self.offsets.repeat(times, 1, 1), self.texts * times)

    def token_positions(self, row: int, char_positions: Iterable[int]) -> list[int]:
        """Token index holding each character position of text ``row``: the token whose span contains it."""
        ends = self.offsets[row, :, 1].tolist()
        starts = self.offsets[row, :, 0].tolist()
        n_real = int(self.attention_mask[row].sum())
        out = []
        for c in char_positions:
            tok = next((t for t in range(n_real) if starts[t] <= c < ends[t]), None)
            if tok is None:
                raise ValueError(f"character {c} of text {row} is covered by no token (text has {len(self.texts[row])} chars)")
            out.append(tok)
        return out


@dataclass(frozen=True)
class WeightLink:
    """A weight matrix joining two node sites: ``weight[i, j]`` connects node i of ``out_site``
    to node j of ``in_site``. ``weight`` is the model's own parameter (edits change the model)."""

    name: str  # the parameter's name in the model
    out_site: str
    in_site: str
    weight: torch.Tensor  # [nodes of out_site, nodes of in_site]


@dataclass
class ForwardOutput:
    logits: torch.Tensor  # [B, T, vocab]
    activations: dict[str, torch.Tensor]  # site name -> activation, leading dims [B, T]


class ModelAdapter(ABC):
    """Abstract model: tokenizer with offsets, a hooked forward, named sites."""

    info: ModelInfo
    device: torch.device

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> Encoding:
        """Tokenize ``texts`` into a right-padded batch with character offsets, on ``self.device``."""

    @abstractmethod
    def completion_id(self, completion: str) -> int:
        """The token id of ``completion``; raises ``ValueError`` unless it is exactly one token."""

    @abstractmethod
    def forward(
        self,
        enc: Encoding,
        capture: Sequence[str] = (),
        interventions: Mapping[str, Intervention] | None = None,
    ) -> ForwardOutput:
        """Logits for ``enc``; activations at the ``capture`` sites; ``interventions`` replace site activations."""

    def last_token_logits(self, enc: Encoding, interventions: Mapping[str, Intervention] | None = None) -> torch.Tensor:
        """[B, vocab] logits at each text's last real token (``enc.last_index``), what the task metric reads. An
        adapter may compute the sites after the last layer's keys and values at that token alone: an intervention
        there then sees [B, 1, ...], row b at position ``enc.last_index[b]``
        (:func:`fracbench.circuits.ablation_interventions` takes those positions). This default runs :meth:`forward`."""
        logits = self.forward(enc, interventions=interventions).logits
        return logits[torch.arange(len(logits), device=logits.device), enc.last_index]

    @abstractmethod
    def sites(self) -> dict[str, tuple[int, ...]]:
        """Every site name -> shape of its activation at one token position (e.g. ``(n_heads, d_head)``)."""

    def weight_links(self) -> list[WeightLink]:
        """The weight matrices between node sites (circuit edges and weight noise need them).
        Adapters that do not expose their weights this way raise ``NotImplementedError``."""
        raise NotImplementedError(f"{self.info.name} does not expose weight links: circuit edges and weight noise are unavailable")

    def untrained_twin(self, seed: int) -> ModelAdapter:
        """The same architecture and tokenizer with freshly initialized weights (its own init scheme, seeded).
        Decodability measures what training added above it; adapters that cannot build one raise
        ``NotImplementedError`` and D falls back to the model-free floor (docs/metrics.md)."""
        raise NotImplementedError(f"{self.info.name} cannot build an untrained twin")

    # -- shared checks ---------------------------------------------------------------
    def check_sites(self, names: Iterable[str]) -> None:
        from ..registry import unknown_name_message

        valid = self.sites()
        for name in names:
            if name not in valid:
                raise KeyError(unknown_name_message(f"site of {self.info.name}", name, valid))


def weights_sha256(module: torch.nn.Module) -> str:
    """A hash of every parameter and buffer, in name order: the same weights give the same hash."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_finite(name: str, t: torch.Tensor, model: str) -> None:
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise FloatingPointError(f"{model}: {bad} non-finite values (NaN or inf) in {name}; check the weights and the dtype")
