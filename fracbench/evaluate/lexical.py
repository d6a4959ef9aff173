"""The lexical baseline of decodability: what the current token's identity alone predicts.

A latent that is a function of the token itself (is this character a quote?) is
decodable from any representation that keeps the token's identity, which every layer of
a language model does; reading it says nothing about what the model computed. Pimentel
et al. 2020 (*Information-Theoretic Probing for Linguistic Structure*, ACL) measure a
contextual representation's gain over a non-contextual (type-level) one; decodability D
does the same with the best type-level predictor there is: for each token type, the
majority label of its fit rows. It is exact (counts, no fitted model), so unlike a
control probe (Hewitt & Liang 2019) it cannot memorize more than token identity
determines. Definition and evidence: docs/metrics.md, "Decodability D".
"""

from __future__ import annotations

import torch


def lexical_predictions(fit_tokens: torch.Tensor, fit_labels: torch.Tensor, tokens: torch.Tensor, fallback: int) -> torch.Tensor:
    """[N] the type-level prediction for each of ``tokens`` [N]: the majority label among the fit
    rows (``fit_tokens``, ``fit_labels``, both [M]) of the same token type, the smallest class on
    ties; ``fallback`` (the fit rows' overall majority class) for a type no fit row has."""
    if fit_tokens.shape != fit_labels.shape or fit_tokens.ndim != 1 or tokens.ndim != 1:
        raise ValueError(f"fit_tokens and fit_labels must both be [M] and tokens [N], got {tuple(fit_tokens.shape)}, "
                         f"{tuple(fit_labels.shape)} and {tuple(tokens.shape)}")
    if fit_labels.numel() == 0:
        raise ValueError("no fit rows: the lexical baseline needs at least one")
    fit_tokens, fit_labels, tokens = fit_tokens.cpu().long(), fit_labels.cpu().long(), tokens.cpu().long()
    types, inverse = fit_tokens.unique(sorted=True, return_inverse=True)
    counts = torch.zeros(len(types), int(fit_labels.max()) + 1, dtype=torch.long)
    counts.index_put_((inverse, fit_labels), torch.ones_like(fit_labels), accumulate=True)  # exact integer counts
    majority = counts.argmax(1)  # torch.argmax returns the first (smallest) class among equal counts
    where = torch.searchsorted(types, tokens).clamp(max=len(types) - 1)
    seen = types[where] == tokens
    return torch.where(seen, majority[where], torch.full_like(tokens, fallback))


__all__ = ["lexical_predictions"]
