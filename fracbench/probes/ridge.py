"""Ridge classifiers for many probes at once, as scikit-learn's ``RidgeClassifierCV``.

One-vs-all targets in {-1, +1}, an unpenalized intercept (centred data), and the alpha with
the least exact leave-one-out squared error, chosen per label set from the mean over its
columns (scikit-learn's default, ``alpha_per_target=False``). One eigendecomposition of each
site's centred Gram matrix, in float64, serves every label set and every alpha. The data are
read twice per site, in row blocks: once in float64 for the Gram matrix's upper triangle and
the cross-moments, once in the data's precision for the leave-one-out residuals, which are reduced
block by block in cache and never materialized for all rows.

Because a label set's K centred one-vs-all targets sum to zero in every row, their fitted
values and residuals do too: only K - 1 columns are ever fitted, the last is minus their sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GRAM_BLOCK_ROWS = 1024  # rows converted to float64 at a time for the Gram pass (in cache)
GRAM_COLUMN_BANDS = 4  # column bands of the Gram pass: only the upper triangle's bands are multiplied
LOO_BLOCK_ROWS = 1024  # rows per block of the leave-one-out reduction (stays in cache)


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
    ``alphas`` [A] float64.

    Sites are independent and go one at a time, each fitting all of its P label sets at once:
    plain products on 1024-row blocks ran 5-10% faster on the CPU than products batched over
    sites on smaller blocks, and a site needs no padding to the widest site's classes.
    (Sites spread over a thread pool, one intra-op thread each, measured no faster.)
    """
    free = (torch.arange(valid.shape[2]) < (n_classes.cpu()[..., None] - 1)).flatten(1)  # [S, P*K]
    fits = [
        _fit_site(X[s], labels[s], valid[s], n_classes[s], alphas, free[s].nonzero().squeeze(1).to(X.device))
        for s in range(X.shape[0])
    ]
    return RidgeFit(*(torch.stack(parts) for parts in zip(*fits)))


def _fit_site(x: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, n_classes: torch.Tensor, alphas: torch.Tensor,
              cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One site: ``x`` [N, d], ``labels`` [P, N], ``valid`` [P, K], ``n_classes`` [P], ``cols`` [C] the
    free columns. Returns coef [d, P*K], intercept [P*K], the selected alpha [P] and the
    leave-one-out error [P, A]."""
    N, d = x.shape
    P, K = valid.shape
    A, C = len(alphas), len(cols)
    f64 = dict(dtype=torch.float64, device=x.device)
    # Targets are never materialized for all rows: a block's one-hot columns are built in cache.
    # t = 2 one_hot - 1 (0 in unused columns), so t_mean = 2 freq - 1 and the centred
    # cross-moments are 2 (X^T one_hot - N x_mean freq^T).
    column = labels + torch.arange(P, device=x.device)[:, None] * K  # [P, N] the one-hot column of each row
    counts = torch.bincount(column.flatten(), minlength=P * K).to(torch.float64)  # [P*K]
    validf = valid.flatten().to(torch.float64)
    t_mean = (2 * counts / N - 1) * validf  # [P*K]

    # Pass 1, float64: the Gram matrix and the cross-moments, one product per row block and
    # column band. Band i holds rows [a, b) of [X^T X | X^T one_hot] from column a on, so the
    # Gram matrix's lower triangle is never computed (it is mirrored after): 70% of the
    # multiply-adds of a full X^T X at d = 256. Centring comes after (G - N mean mean^T).
    bands = _bands(d, GRAM_COLUMN_BANDS)
    upper = [torch.zeros(band.stop - band.start, d - band.start + P * K, **f64) for band in bands]
    block = torch.empty(GRAM_BLOCK_ROWS, d + P * K, **f64)
    for rows in _blocks(N, GRAM_BLOCK_ROWS):
        b = block[: rows.stop - rows.start]
        b[:, :d] = x[rows]  # float64 copy of a block small enough to stay in cache
        b[:, d:] = 0.0
        b[:, d:].scatter_(1, column[:, rows].T, 1.0)
        for band, moments in zip(bands, upper):
            moments.addmm_(b[:, band].T, b[:, band.start :])
    gram, cross = torch.empty(d, d, **f64), torch.empty(d, P * K, **f64)
    for band, moments in zip(bands, upper):
        gram[band, band.start :] = moments[:, : d - band.start]
        gram[band.stop :, band] = moments[:, band.stop - band.start : d - band.start].T
        cross[band] = moments[:, d - band.start :]
    # every row has exactly one class in label set 0, so its K one-hot columns sum to ones: X^T 1
    x_mean = cross[:, :K].sum(1) / N  # [d]
    gram -= N * torch.outer(x_mean, x_mean)
    cross = 2 * (cross - torch.outer(x_mean, counts)) * validf  # X_c^T T_c
    eigvals, V = torch.linalg.eigh(gram)
    shrink = 1.0 / (eigvals.clamp_min(0.0)[:, None] + alphas)  # [d, A]
    Q = V.T @ cross  # [d, P*K] = Z^T Tc, Z the centred data in the eigenbasis

    # fitted values for every alpha: Z @ (shrink * Q), over the free columns only
    M = (shrink[:, :, None] * Q[:, cols][:, None, :]).reshape(d, A * C).to(x.dtype)
    t_free = (1.0 + t_mean[cols]).to(x.dtype)  # [C]: centred target = 2 one_hot - t_free
    group = torch.nn.functional.one_hot(cols // K, P).to(x.dtype)  # [C, P]: each free column's label set
    Vx, shift, shrink_x = V.to(x.dtype), (x_mean @ V).to(x.dtype), shrink.to(x.dtype)

    # Pass 2, in the data's precision: exact leave-one-out for every alpha, block by block.
    loo_sse = torch.zeros(A, P, **f64)
    one_hot = torch.empty(LOO_BLOCK_ROWS, P * K, dtype=x.dtype, device=x.device)
    for rows in _blocks(N, LOO_BLOCK_ROWS):
        B = rows.stop - rows.start
        z = torch.addmm(shift, x[rows], Vx, beta=-1)  # [B, d] centred rows in the eigenbasis
        leverage = (z * z) @ shrink_x + 1.0 / N  # [B, A] hat-matrix diagonal (1/N from the intercept)
        weight = (1.0 - leverage) ** -2  # LOO residual = residual / (1 - h)
        hot = one_hot[:B].zero_().scatter_(1, column[:, rows].T, 1.0)
        target = 2 * hot.index_select(1, cols) - t_free  # [B, C]
        residual = (target[:, None, :] - (z @ M).view(B, A, C)).view(B * A, C)
        last = residual @ group  # minus each label set's last column
        per_set = (residual.square_() @ group + last.square_()).view(B, A, P)
        loo_sse += (per_set * weight[..., None]).sum(0, dtype=torch.float64)
    loo_mse = loo_sse / (N * n_classes)  # [A, P]
    best = loo_mse.argmin(0)  # [P]: the first alpha on ties, as scikit-learn

    coef = V @ (shrink[:, best.repeat_interleave(K)] * Q)  # [d, P*K]
    intercept = t_mean - x_mean @ coef
    return coef, intercept, best, loo_mse.T


def _blocks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _bands(d: int, n_bands: int) -> list[slice]:
    """``n_bands`` contiguous column ranges covering 0..d-1, as equal as possible."""
    edges = [round(i * d / n_bands) for i in range(n_bands + 1)]
    return [slice(a, b) for a, b in zip(edges, edges[1:]) if b > a]


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
