"""Ridge classifiers for many probes at once, as scikit-learn's ``RidgeClassifierCV``.

One-vs-all targets in {-1, +1}, an unpenalized intercept (centred data), and the alpha with
the least exact leave-one-out squared error, chosen per label set from the mean over its
columns (scikit-learn's default, ``alpha_per_target=False``). One eigendecomposition of each
site's centred Gram matrix, in float64, serves every label set and every alpha. The data are
read twice, in row blocks: once in float64 for the Gram matrix and the cross-moments (one
product), once in the data's precision for the leave-one-out residuals, which are reduced
block by block in cache and never materialized for all rows.

Because a label set's K centred one-vs-all targets sum to zero in every row, their fitted
values and residuals do too: only K - 1 columns are ever fitted, the last is minus their sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GRAM_BLOCK_ROWS = 2048  # rows converted to float64 at a time for the Gram pass
LOO_BLOCK_ROWS = 512  # rows per block of the leave-one-out reduction (stays in cache)


@dataclass
class RidgeFit:
    coef: torch.Tensor  # [S, d, P*K] original coordinates, probe-major columns
    intercept: torch.Tensor  # [S, P*K]
    alpha_index: torch.Tensor  # [S, P] the selected alpha
    loo_mse: torch.Tensor  # [S, P, A] each alpha's leave-one-out squared error, per target


def one_vs_all_targets(labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """{-1, +1} targets [S, N, P, K] (0 in unused columns)."""
    K = valid.shape[2]
    targets = torch.nn.functional.one_hot(labels, K).permute(0, 2, 1, 3).to(torch.float64) * 2 - 1
    return targets * valid[:, None]


def symmetric_eig(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (clamped at 0) and eigenvectors of a batch of symmetric PSD matrices. On the CPU
    one call per matrix: batched LAPACK calls oversubscribe threads and can run 100x slower
    on a busy machine."""
    if G.is_cuda:
        values, vectors = torch.linalg.eigh(G)
    else:
        pairs = [torch.linalg.eigh(g) for g in G]
        values, vectors = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    return values.clamp_min(0.0), vectors


def fit_ridge(X: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, n_classes: torch.Tensor, alphas: torch.Tensor) -> RidgeFit:
    """``X`` [S, N, d] (float32 or float64), ``labels`` [S, P, N] column ids, ``valid`` [S, P, K],
    ``alphas`` [A] float64."""
    S, N, d = X.shape
    P, K = valid.shape[1], valid.shape[2]
    A = len(alphas)
    T = one_vs_all_targets(labels, valid)  # [S, N, P, K]
    t_mean = T.mean(1, keepdim=True)
    Tc = (T - t_mean).reshape(S, N, P * K)  # centred targets

    # Pass 1, float64: the Gram matrix and the cross-moments in one product per row block.
    # Centring comes after (G - N mean mean^T); centred targets need none (their columns sum to 0).
    gram = torch.zeros(S, d, d, dtype=torch.float64, device=X.device)
    cross = torch.zeros(S, d, P * K, dtype=torch.float64, device=X.device)
    x_sum = torch.zeros(S, 1, d, dtype=torch.float64, device=X.device)
    for rows in _blocks(N, GRAM_BLOCK_ROWS):
        x = X[:, rows].to(torch.float64)
        xt = x.transpose(1, 2)
        gram.baddbmm_(xt, x)
        cross.baddbmm_(xt, Tc[:, rows])
        x_sum += x.sum(1, keepdim=True)
    x_mean = x_sum / N
    gram -= N * x_mean.transpose(1, 2) @ x_mean
    eigvals, V = symmetric_eig(gram)  # [S, d], [S, d, d]
    Q = V.transpose(1, 2) @ cross  # [S, d, P*K] = Z^T Tc, Z the centred data in the eigenbasis
    shrink = 1.0 / (eigvals[:, :, None] + alphas)  # [S, d, A]

    free = _free_columns(n_classes, K)  # [S, P*K]: every real column but each label set's last
    C = int(free.sum(1).max())
    cols = torch.argsort((~free).to(torch.uint8), dim=1, stable=True)[:, :C]  # [S, C] free columns first
    col_real = free.gather(1, cols)  # padding slots (sites with fewer free columns) are not real
    group = (torch.nn.functional.one_hot(cols // K, P).to(X.dtype) * col_real[..., None])[:, None]  # [S, 1, C, P]
    # fitted values for every alpha: Z @ (shrink * Q), over the free columns only
    M = (shrink[:, :, :, None] * Q.gather(2, cols[:, None].expand(S, d, C))[:, :, None, :]).reshape(S, d, A * C).to(X.dtype)
    Tf = Tc.gather(2, cols[:, None].expand(S, N, C)).to(X.dtype)  # [S, N, C]
    Vx, shift, shrink_x = V.to(X.dtype), (x_mean @ V).to(X.dtype), shrink.to(X.dtype)

    # Pass 2, in the data's precision: exact leave-one-out for every alpha, block by block.
    loo_sse = torch.zeros(S, A, P, dtype=torch.float64, device=X.device)
    for rows in _blocks(N, LOO_BLOCK_ROWS):
        z = X[:, rows] @ Vx - shift  # [S, B, d]
        leverage = (z * z) @ shrink_x + 1.0 / N  # [S, B, A] hat-matrix diagonal (1/N from the intercept)
        weight = (1.0 - leverage) ** -2  # LOO residual = residual / (1 - h)
        residual = (Tf[:, rows, None, :] - (z @ M).view(S, -1, A, C)) * col_real[:, None, None, :]  # [S, B, A, C]
        last = residual @ group  # [S, B, A, P]: minus each label set's last column
        per_set = residual.square_() @ group + last.square_()  # [S, B, A, P]
        loo_sse += (per_set * weight[..., None]).sum(1, dtype=torch.float64)
    loo_mse = loo_sse / (N * n_classes[:, None, :])  # [S, A, P]
    best = loo_mse.argmin(1)  # [S, P]: the first alpha on ties, as scikit-learn

    best_shrink = shrink.gather(2, best.repeat_interleave(K, dim=1)[:, None, :].expand(S, d, P * K))  # [S, d, P*K]
    coef = V @ (best_shrink * Q)  # [S, d, P*K]
    intercept = t_mean.reshape(S, P * K) - (x_mean @ coef).squeeze(1)
    return RidgeFit(coef, intercept, best, loo_mse.transpose(1, 2))


def _blocks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _free_columns(n_classes: torch.Tensor, K: int) -> torch.Tensor:
    """[S, P*K]: the columns fitted explicitly (classes 0..k-2 of a k-class label set)."""
    return (torch.arange(K, device=n_classes.device) < (n_classes[..., None] - 1)).flatten(1)
