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

GRAM_BLOCK_ROWS = 512  # rows converted to float64 at a time for the Gram pass (in cache)
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
    # Targets are never materialized for all rows: a block's one-hot columns are built in cache.
    # t = 2 one_hot - 1 (0 in unused columns), so t_mean = 2 freq - 1 and the centred
    # cross-moments are 2 (X^T one_hot - N x_mean freq^T).
    column = labels + torch.arange(P, device=X.device)[:, None] * K  # [S, P, N] the one-hot column of each row
    counts = torch.zeros(S, P * K, dtype=torch.float64, device=X.device).scatter_add_(
        1, column.flatten(1), torch.ones(1, dtype=torch.float64, device=X.device).expand(S, P * N)
    )
    validf = valid.reshape(S, P * K).to(torch.float64)
    t_mean = (2 * counts / N - 1) * validf  # [S, P*K]

    def one_hot_block(rows: slice, dtype: torch.dtype) -> torch.Tensor:
        out = torch.zeros(S, rows.stop - rows.start, P * K, dtype=dtype, device=X.device)
        return out.scatter_(2, column[:, :, rows].transpose(1, 2), 1.0)

    # Pass 1, float64: the Gram matrix and the cross-moments in one product per row block.
    # Centring comes after (G - N mean mean^T).
    moments = torch.zeros(S, d, d + P * K, dtype=torch.float64, device=X.device)  # [X^T X | X^T one_hot]
    x_sum = torch.zeros(S, 1, d, dtype=torch.float64, device=X.device)
    block = torch.empty(S, GRAM_BLOCK_ROWS, d + P * K, dtype=torch.float64, device=X.device)
    for rows in _blocks(N, GRAM_BLOCK_ROWS):
        b = block[:, : rows.stop - rows.start]
        b[:, :, :d] = X[:, rows]  # float64 copy of a block small enough to stay in cache
        b[:, :, d:] = 0.0
        b[:, :, d:].scatter_(2, column[:, :, rows].transpose(1, 2), 1.0)
        x = b[:, :, :d]
        moments.baddbmm_(x.transpose(1, 2), b)
        x_sum += x.sum(1, keepdim=True)
    gram, cross = moments[:, :, :d], moments[:, :, d:]
    x_mean = x_sum / N
    gram -= N * x_mean.transpose(1, 2) @ x_mean
    cross = 2 * (cross - x_mean.transpose(1, 2) @ counts[:, None, :]) * validf[:, None, :]  # X_c^T T_c
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
    t_free = (1.0 + t_mean.gather(1, cols)).to(X.dtype)  # [S, C]: centred target = 2 one_hot - t_free
    Vx, shift, shrink_x = V.to(X.dtype), (x_mean @ V).to(X.dtype), shrink.to(X.dtype)

    # Pass 2, in the data's precision: exact leave-one-out for every alpha, block by block.
    loo_sse = torch.zeros(S, A, P, dtype=torch.float64, device=X.device)
    for rows in _blocks(N, LOO_BLOCK_ROWS):
        z = X[:, rows] @ Vx - shift  # [S, B, d]
        leverage = (z * z) @ shrink_x + 1.0 / N  # [S, B, A] hat-matrix diagonal (1/N from the intercept)
        weight = (1.0 - leverage) ** -2  # LOO residual = residual / (1 - h)
        target = 2 * one_hot_block(rows, X.dtype).gather(2, cols[:, None].expand(S, rows.stop - rows.start, C)) - t_free[:, None]
        residual = (target[:, :, None, :] - (z @ M).view(S, -1, A, C)) * col_real[:, None, None, :]  # [S, B, A, C]
        last = residual @ group  # [S, B, A, P]: minus each label set's last column
        per_set = residual.square_() @ group + last.square_()  # [S, B, A, P]
        loo_sse += (per_set * weight[..., None]).sum(1, dtype=torch.float64)
    loo_mse = loo_sse / (N * n_classes[:, None, :])  # [S, A, P]
    best = loo_mse.argmin(1)  # [S, P]: the first alpha on ties, as scikit-learn

    best_shrink = shrink.gather(2, best.repeat_interleave(K, dim=1)[:, None, :].expand(S, d, P * K))  # [S, d, P*K]
    coef = V @ (best_shrink * Q)  # [S, d, P*K]
    intercept = t_mean - (x_mean @ coef).squeeze(1)
    return RidgeFit(coef, intercept, best, loo_mse.transpose(1, 2))


def _blocks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _free_columns(n_classes: torch.Tensor, K: int) -> torch.Tensor:
    """[S, P*K]: the columns fitted explicitly (classes 0..k-2 of a k-class label set)."""
    return (torch.arange(K, device=n_classes.device) < (n_classes[..., None] - 1)).flatten(1)


class RidgeStatistics:
    """Sufficient statistics for streaming ridge: per site the row count, sums, the Gram matrix
    and cross-moments with the targets (float64), kept separately for fitting rows and for
    held-out rows. Memory is O(S d (d + P K)) whatever the number of rows.

    Exact leave-one-out needs every row's residual, which sufficient statistics cannot give;
    the held-out rows' squared error, though, is a quadratic form in these moments, so alpha
    selection on held-out rows is exact. The chosen alpha is then refitted on all rows, as
    ``RidgeClassifierCV`` refits on all data.
    """

    def __init__(self, S: int, d: int, n_targets: int, device: torch.device) -> None:
        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(2, S, *shape, dtype=torch.float64, device=device)  # [0] fitting rows, [1] held out

        self.n = torch.zeros(2, dtype=torch.float64, device=device)
        self.x_sum, self.t_sum, self.t_sq = zeros(1, d), zeros(1, n_targets), zeros(1, n_targets)
        self.gram, self.cross = zeros(d, d), zeros(d, n_targets)

    def update(self, X: torch.Tensor, T: torch.Tensor, held_out: torch.Tensor) -> None:
        """Add rows ``X`` [S, N, d] with targets ``T`` [S, N, n_targets]; ``held_out`` [N] bool."""
        for part, mask in enumerate((~held_out, held_out)):
            if not bool(mask.any()):
                continue
            Xp, Tp = (X, T) if bool(mask.all()) else (X[:, mask], T[:, mask])
            for rows in _blocks(Xp.shape[1], GRAM_BLOCK_ROWS):
                x, t = Xp[:, rows].to(torch.float64), Tp[:, rows]
                xt = x.transpose(1, 2)
                self.gram[part].baddbmm_(xt, x)
                self.cross[part].baddbmm_(xt, t)
                self.x_sum[part] += x.sum(1, keepdim=True)
                self.t_sum[part] += t.sum(1, keepdim=True)
                self.t_sq[part] += t.square().sum(1, keepdim=True)
            self.n[part] += mask.sum()

    def solve(self, alphas: torch.Tensor, n_classes: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Coefficients [S, d, P*K], intercepts [S, P*K], the selected alpha index [S, P] and the
        held-out mean squared error per alpha [S, P, A] (None with a single alpha)."""
        S, P = n_classes.shape
        A = len(alphas)
        if A == 1:
            best = torch.zeros(S, P, dtype=torch.long, device=alphas.device)
            held_out_mse = None
        else:
            W, _, x_mean, t_mean = self._solutions(self._merged(0), alphas)  # [S, A, d, P*K]
            n_v = self.n[1]
            x_v, t_v = self.x_sum[1], self.t_sum[1]
            # moments of the held-out rows about the fitting rows' means
            uu = self.gram[1] - x_v.transpose(1, 2) @ x_mean - x_mean.transpose(1, 2) @ x_v + n_v * x_mean.transpose(1, 2) @ x_mean
            uv = self.cross[1] - x_v.transpose(1, 2) @ t_mean - x_mean.transpose(1, 2) @ t_v + n_v * x_mean.transpose(1, 2) @ t_mean
            vv = self.t_sq[1] - 2 * t_mean * t_v + n_v * t_mean.square()  # [S, 1, P*K]
            sse = vv - 2 * (W * uv[:, None]).sum(2) + (W * (uu[:, None] @ W)).sum(2)  # [S, A, P*K]
            valid = (torch.arange(K, device=alphas.device) < n_classes[..., None]).flatten(1)  # [S, P*K]
            per_set = (sse * valid[:, None]).view(S, A, P, K).sum(-1) / (n_v * n_classes[:, None])  # [S, A, P]
            best = per_set.argmin(1)
            held_out_mse = per_set.transpose(1, 2)
        W, intercept, _, _ = self._solutions(self._merged(None), alphas)
        index = best.repeat_interleave(K, dim=1)  # [S, P*K]
        coef = W.gather(1, index[:, None, None, :].expand(S, 1, W.shape[2], W.shape[3])).squeeze(1)
        return coef, intercept.gather(1, index[:, None, :]).squeeze(1), best, held_out_mse

    def _merged(self, part: int | None) -> tuple[torch.Tensor, ...]:
        """(n, x_sum, t_sum, gram, cross) of the fitting rows (part 0) or of all rows (None)."""
        if part is not None:
            return self.n[part], self.x_sum[part], self.t_sum[part], self.gram[part], self.cross[part]
        return self.n.sum(), self.x_sum.sum(0), self.t_sum.sum(0), self.gram.sum(0), self.cross.sum(0)

    @staticmethod
    def _solutions(stats: tuple[torch.Tensor, ...], alphas: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every alpha's coefficients [S, A, d, n_targets] and intercepts [S, A, n_targets], and the means."""
        n, x_sum, t_sum, gram, cross = stats
        if float(n) == 0:
            raise ValueError("no rows to fit: every row so far was held out; pass rows with validation=False")
        x_mean, t_mean = x_sum / n, t_sum / n
        centred_gram = gram - n * x_mean.transpose(1, 2) @ x_mean
        centred_cross = cross - n * x_mean.transpose(1, 2) @ t_mean
        eigvals, V = symmetric_eig(centred_gram)
        shrink = 1.0 / (eigvals[:, None, :, None] + alphas[None, :, None, None])  # [S, A, d, 1]
        W = V[:, None] @ (shrink * (V.transpose(1, 2) @ centred_cross)[:, None])  # [S, A, d, n_targets]
        intercept = t_mean - (x_mean[:, None] @ W).squeeze(2)  # [S, A, n_targets]
        return W, intercept, x_mean, t_mean
