"""Activation capture: batched forward passes that keep only the sites and tokens asked for.

Positions are given in characters (as tasks label latents) and mapped to tokens through
the adapter's offsets, so the same call works for the character-level zoo and for any
HuggingFace tokenizer. Only the gathered rows leave the device, in the dtype asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .models.adapter import ModelAdapter
from .tasks import Example


@dataclass
class Captured:
    """Activations gathered at chosen tokens, one row per (text, token)."""

    activations: dict[str, torch.Tensor]  # site -> [N, *site shape]
    text_index: torch.Tensor  # [N] which text each row came from
    token_index: torch.Tensor  # [N] the token's index within its text
    spans: torch.Tensor  # [N, 2] the token's character span [start, end) in its text
    token_ids: torch.Tensor  # [N] the token itself (control tasks key on token identity)


@dataclass
class LatentData:
    """A latent's probing data: activations at every labelled token, and what each row is."""

    activations: dict[str, torch.Tensor]  # site -> [N, *site shape]
    labels: torch.Tensor  # [N] the latent's class at that token
    token_ids: torch.Tensor  # [N] which token it is
    text_index: torch.Tensor  # [N] which example it came from (for splitting by example, not by row)


@torch.no_grad()
def capture(
    adapter: ModelAdapter,
    texts: Sequence[str],
    sites: Sequence[str],
    char_positions: Sequence[Sequence[int]] | None = None,
    batch_size: int = 64,
    dtype: torch.dtype = torch.float32,
    out_device: str | torch.device = "cpu",
    progress: bool = False,
) -> Captured:
    """Activations at ``sites`` for the tokens covering ``char_positions[i]`` of ``texts[i]``.

    ``char_positions=None`` takes each text's last token (where the next one is predicted).
    Characters that share a token give one row (the token's), in the order first seen; rows
    are in text order, whatever order the batches ran in (texts of similar length together).
    """
    adapter.check_sites(sites)
    if char_positions is not None and len(char_positions) != len(texts):
        raise ValueError(f"char_positions has {len(char_positions)} entries for {len(texts)} texts; give one list per text")
    parts: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    text_index, token_index, spans, token_ids = [], [], [], []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch together: less padding
    for start in tqdm(range(0, len(texts), batch_size), desc="capture", disable=not progress, leave=False):
        idx = order[start : start + batch_size]
        enc = adapter.encode([texts[i] for i in idx])
        rows, toks = [], []
        for r, i in enumerate(idx):
            if char_positions is None:
                tokens = [int(enc.last_index[r])]
            else:
                tokens = list(dict.fromkeys(enc.token_positions(r, char_positions[i])))
            rows += [r] * len(tokens)
            toks += tokens
        out = adapter.forward(enc, capture=sites)
        r_idx = torch.tensor(rows, device=enc.ids.device, dtype=torch.long)
        t_idx = torch.tensor(toks, device=enc.ids.device, dtype=torch.long)
        for s in sites:
            parts[s].append(out.activations[s][r_idx, t_idx].to(device=out_device, dtype=dtype))
        text_index += [idx[r] for r in rows]
        token_index += toks
        spans.append(enc.offsets[r_idx, t_idx].cpu())
        token_ids.append(enc.ids[r_idx, t_idx].cpu())
    back = torch.argsort(torch.tensor(text_index, dtype=torch.long), stable=True)  # rows in text order again
    return Captured(
        activations={s: torch.cat(p)[back] for s, p in parts.items()},
        text_index=torch.tensor(text_index, dtype=torch.long)[back],
        token_index=torch.tensor(token_index, dtype=torch.long)[back],
        spans=torch.cat(spans)[back] if spans else torch.zeros(0, 2, dtype=torch.long),
        token_ids=torch.cat(token_ids)[back] if token_ids else torch.zeros(0, dtype=torch.long),
    )


def latent_dataset(
    adapter: ModelAdapter,
    examples: Sequence[Example],
    latent: str,
    sites: Sequence[str],
    **capture_kwargs,
) -> LatentData:
    """Probing data for ``latent``: activations per site at every labelled token, with labels.
    A token covering several labelled characters takes the label of the last one (the
    state after reading the whole token)."""
    return latent_datasets(adapter, examples, [latent], sites, **capture_kwargs)[latent]


def latent_datasets(
    adapter: ModelAdapter,
    examples: Sequence[Example],
    latents: Sequence[str],
    sites: Sequence[str],
    **capture_kwargs,
) -> dict[str, LatentData]:
    """:func:`latent_dataset` for several latents from one forward pass over ``examples``.

    Each latent gets exactly the rows (and order) :func:`latent_dataset` would give it:
    the tokens covering its labelled characters, in token order.
    """
    texts, positions, labels = [], [], []
    for ex in examples:
        missing = [name for name in latents if name not in ex.latents]
        if missing:
            raise KeyError(f"examples carry no latent {missing[0]!r}; they carry {sorted(ex.latents)}")
        texts.append(ex.prompt)
        per_latent = [dict(ex.latents[name]) for name in latents]
        labels.append(per_latent)
        positions.append(sorted(set().union(*per_latent)))
    captured = capture(adapter, texts, sites, positions, **capture_kwargs)
    out = {}
    for j, name in enumerate(latents):
        rows, y = [], []
        for row, (i, (start, end)) in enumerate(zip(captured.text_index.tolist(), captured.spans.tolist())):
            here = [p for p in range(start, end) if p in labels[i][j]]  # a token spans a few characters
            if here:
                rows.append(row)
                y.append(labels[i][j][here[-1]])
        keep = torch.tensor(rows, dtype=torch.long)
        out[name] = LatentData(
            {s: a[keep] for s, a in captured.activations.items()},
            torch.tensor(y, dtype=torch.long),
            captured.token_ids[keep],
            captured.text_index[keep],
        )
    return out
