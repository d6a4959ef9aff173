"""Tokenization through a HuggingFace fast tokenizer, shared by the adapters of models that come with one (HuggingFace
directories, TransformerLens models): right-padded batches with each token's character span, and the single token a
completion is scored by. Subclasses set ``tokenizer``, ``info``, ``device`` and ``_pad_id``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from .adapter import Encoding, ForwardOutput, Intervention, ModelAdapter, check_finite

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class SubwordAdapter(ModelAdapter, ABC):
    """The tokenizer half of an adapter whose model reads a HuggingFace fast tokenizer's ids, and the checks of its forward."""

    tokenizer: PreTrainedTokenizerBase
    _pad_id: int
    # HuggingFace adapters tokenize as the family does (Llama's tokenizer adds BOS); a TransformerLens model adds its own
    # BOS, as model.to_tokens does, so its adapter sets add_special_tokens False and prefix_ids to (BOS,) or ()
    add_special_tokens: bool = True
    prefix_ids: tuple[int, ...] = ()  # ids put in front of every text, with empty spans: they stand for no character

    def forward(self, enc: Encoding, capture: Sequence[str] = (), interventions: Mapping[str, Intervention] | None = None) -> ForwardOutput:
        if isinstance(capture, str):
            raise TypeError(f"capture takes a sequence of site names, got the string {capture!r}; wrap it in a list")
        interventions = dict(interventions or {})
        self.check_sites([*capture, *interventions])
        return self._run(enc, capture, interventions)

    @abstractmethod
    def _run(self, enc: Encoding, capture: Sequence[str], interventions: dict[str, Intervention]) -> ForwardOutput:
        """The forward with the (already checked) sites captured and edited, hooks removed whatever happens."""

    def _output(self, logits: torch.Tensor, store: dict[str, torch.Tensor], capture: Sequence[str]) -> ForwardOutput:
        """The forward's result, every number checked finite (every site in :meth:`sites` fires, so each captured one is there)."""
        check_finite("logits", logits, self.info.name)
        for site, act in store.items():
            check_finite(f"activations at {site}", act, self.info.name)
        return ForwardOutput(logits, {site: store[site] for site in capture if site in store})

    def encode(self, texts: Sequence[str]) -> Encoding:
        if isinstance(texts, str) or not texts:
            raise TypeError(f"encode takes a non-empty sequence of texts, got {type(texts).__name__} {texts!r:.60}")
        batch = self.tokenizer(list(texts), return_offsets_mapping=True, add_special_tokens=self.add_special_tokens)
        prefix = list(self.prefix_ids)
        rows = [prefix + r for r in batch["input_ids"]]
        spans = [[(0, 0)] * len(prefix) + list(s) for s in batch["offset_mapping"]]
        unk = self.tokenizer.unk_token_id
        for i, r in enumerate(rows):
            if not r:
                raise ValueError(f"text {i} encodes to no tokens on {self.info.name}; give it at least one character")
            if unk is not None and unk in r:
                lacking = sorted({texts[i][s:e] for t, (s, e) in zip(r, spans[i]) if t == unk})
                raise ValueError(
                    f"text {i}: the vocabulary of {self.info.name} lacks {lacking}, which would be read as "
                    f"{self.tokenizer.unk_token!r}; this model cannot be scored on text containing it"
                )
            if len(r) > self.info.n_ctx:
                raise ValueError(
                    f"text {i} is {len(r)} tokens; {self.info.name} reads at most {self.info.n_ctx} (its context); shorten it"
                )
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        offsets = torch.zeros((len(rows), T, 2), dtype=torch.long)
        for i, (r, s) in enumerate(zip(rows, spans)):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
            offsets[i, : len(r)] = torch.tensor(disjoint_spans(s), dtype=torch.long).reshape(-1, 2)
        return Encoding(ids, mask, offsets, list(texts)).to(self.device)

    def completion_id(self, completion: str) -> int:
        """The single token that, predicted next, continues the text with exactly ``completion``."""
        enc = self.tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        spans = disjoint_spans(enc["offset_mapping"])
        covered = {c for t, (s, e) in zip(ids, spans) if t != self.tokenizer.unk_token_id for c in range(s, e)}
        lacking = [ch for i, ch in enumerate(completion) if i not in covered]
        if lacking:
            raise ValueError(
                f"completion {completion!r}: the vocabulary of {self.info.name} lacks the character(s) {lacking}; "
                "pick a task whose completions the tokenizer can represent"
            )
        # Tokenized alone, a completion may gain a prefix space (SentencePiece's "▁'"): fall back to the raw vocabulary entry.
        alone = ids if len(ids) == 1 else []
        for tid in [*alone, self.tokenizer.convert_tokens_to_ids(completion)]:
            if tid is not None and tid != self.tokenizer.unk_token_id and self._continues_with(tid, completion):
                return int(tid)
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        if len(ids) != 1:
            raise ValueError(
                f"completion {completion!r} splits into {len(ids)} tokens {tokens} on {self.info.name}; "
                "it must be exactly one token to be scored as a next-token choice"
            )
        raise ValueError(
            f"completion {completion!r} tokenizes alone as {tokens}, which in running text reads as "
            f"{self._decode([ids[0], ids[0]])[len(self._decode([ids[0]])):]!r}, and no vocabulary entry is exactly {completion!r}"
        )

    def _continues_with(self, token_id: int, completion: str) -> bool:
        """Whether ``token_id``, placed after a token, appends exactly ``completion`` to the decoded text."""
        first = self._decode([token_id])
        return self._decode([token_id, token_id]) == first + completion

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, clean_up_tokenization_spaces=False)


def visit_site(site: str, act: torch.Tensor, edit: Intervention | None, keep: bool, store: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """One site's activation as a hook sees it: replaced by ``edit(act)`` (which must keep its shape), kept in ``store``
    when ``keep``; the replacement, or None when nothing was edited."""
    if edit is not None:
        new = edit(act)
        if not isinstance(new, torch.Tensor) or new.shape != act.shape:
            got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
            raise ValueError(f"intervention at {site} returned {got}; it must return a tensor of shape {tuple(act.shape)}")
        act = new
    if keep:
        store[site] = act
    return None if edit is None else act


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id that pads a batch: the tokenizer's pad token, else its end of text, else 0 (padding is masked, so any id does)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return pad if pad is not None else 0


def disjoint_spans(spans: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Character spans [start, end) made disjoint: a character shared by several tokens goes to the last of them.

    Tokenizers give overlapping spans when one character becomes several tokens (a
    multi-byte character split into bytes) or when they insert a token for no
    character (SentencePiece's prefix "▁", which spans the next word's first letter).
    The last token is where a causal model has seen the character whole; earlier
    ones are clipped, down to an empty span. Special tokens keep (0, 0).
    """
    out = [(int(s), int(e)) for s, e in spans]
    next_start = None  # start of the nearest later non-empty span
    for t in range(len(out) - 1, -1, -1):
        s, e = out[t]
        if next_start is not None and e > next_start:
            e = max(next_start, s)
            out[t] = (s, e)
        if e > s:
            next_start = s
    return out


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, n_embeddings: int, name: str) -> None:
    """A slow tokenizer (no character offsets) is refused, and so is one that gives ids the model has no embedding for
    (torch would fail with an IndexError mid-run)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{name}: the tokenizer ({type(tokenizer).__name__}) is not a fast tokenizer; fracbench needs character "
            "offsets (return_offsets_mapping), which only fast tokenizers give. Save a tokenizer.json with the tokenizers library"
        )
    largest_id = max(tokenizer.get_vocab().values(), default=-1)
    if largest_id >= n_embeddings:
        raise ValueError(
            f"{name}: the tokenizer gives token ids up to {largest_id} but the model embeds only {n_embeddings} tokens "
            "(its vocabulary size); use the tokenizer the model was trained with"
        )
