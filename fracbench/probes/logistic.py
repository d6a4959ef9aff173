"""Multinomial logistic regression for many probes at once: L-BFGS with one history per probe,
preconditioned by Böhning's bound on the Hessian, which is diagonal in the Gram eigenbasis.

Objective per probe, scikit-learn's ``LogisticRegression`` rescaled by 1 / (C N) as scikit-learn
itself does: mean cross-entropy + ||W||^2 / (2 C N), intercepts unpenalized. In the basis
of the eigenvectors V of the centred covariance (Z = (X - mean) V, an orthogonal change of
variables, so the penalty is unchanged and the intercept decouples from the weights),
Böhning (1992) bounds the loss Hessian by 1/2 (I_K - 11^T/K) kron diag(eigenvalues).
That bound plus the penalty is diagonal, so its inverse costs nothing; scaled per probe
it is the initial inverse Hessian of the L-BFGS two-loop recursion (Nocedal & Wright,
alg. 7.4). Step lengths use Hager & Zhang's approximate Wolfe test, which stays reliable
where float32 losses can no longer resolve the decrease. Curvature pairs, steps and
convergence are batched reductions per probe, and the two data products per evaluation
run only over the probes still moving: no Python loop over probes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .ridge import symmetric_eig

ARMIJO = 1e-4  # sufficient-decrease constant
APPROX_WOLFE = 0.1  # Hager & Zhang's delta: accept when phi'(t) <= (1 - 2 delta) |phi'(0)| ...
LOSS_SLACK = 1e-6  # ... and the loss grew by at most this fraction (float32 rounding)
MAX_BACKTRACKS = 30


@dataclass
class LogisticFit:
    coef: torch.Tensor  # [S, d, P*K] in the original coordinates
    intercept: torch.Tensor  # [S, P*K]
    n_iter: torch.Tensor  # [S, P] iterations each probe took
    converged: torch.Tensor  # [S, P] bool: gradient at most tol


class _Problem:
    """The data side: objective and gradient of any subset of the probes, in the eigenbasis.

    Parameters are [S, d+1, K, P] (row 0 the intercept; class-major so that softmax runs
    over a short middle axis with probes contiguous, which is several times faster).
    """

    def __init__(self, X: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, l2: torch.Tensor, dtype: torch.dtype):
        _, N, d = X.shape
        K = valid.shape[2]
        self.N, self.d, self.K = N, d, K
        self.x_mean = X.mean(1, keepdim=True)  # [S, 1, d]
        Xc = X - self.x_mean
        self.eigvals, self.V = symmetric_eig(Xc.transpose(1, 2) @ Xc / N)  # [S, d], [S, d, d]
        self.Z = (Xc @ self.V).to(dtype)  # [S, N, d]
        del Xc
        # The labels enter the loss and gradient only through per-class sums of the data and
        # class counts (sum_i logit_i,y_i = sum_k w_k . sum_{y_i = k} z_i + n_k b_k), computed once.
        one_hot = torch.nn.functional.one_hot(labels, K).to(torch.float64)  # [S, P, N, K]
        self.class_sums = torch.cat(
            [one_hot.sum(2)[:, None], torch.einsum("snd,spnk->sdpk", self.Z.double(), one_hot)], 1
        ).transpose(2, 3) / N  # [S, d+1, K, P]: row 0 the class frequencies
        self.valid = valid.transpose(1, 2)  # [S, K, P]
        self.mask = torch.where(self.valid, 0.0, float("-inf")).to(dtype)[:, None]  # [S, 1, K, P]
        self.l2 = l2  # [S, P]
        self.dtype = dtype

    def evaluate(self, theta: torch.Tensor, sites: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective [S', A] and gradient [S', d+1, K, A] of probes ``idx`` [S', A] of ``sites`` [S']
        at ``theta`` [S', d+1, K, A]. Sites with nothing to evaluate are left out, not padded."""
        S, N, d, K = len(sites), self.N, self.d, self.K
        A = idx.shape[1]
        everything = S == self.Z.shape[0] and A == self.l2.shape[1] and bool((idx == torch.arange(A, device=idx.device)).all())
        Z = self.Z if S == self.Z.shape[0] else self.Z[sites]
        class_sums = self.class_sums if everything else _take(self.class_sums[sites], idx)
        mask = self.mask if everything else self.mask[sites].gather(3, idx[:, None, None].expand(S, 1, K, A))
        l2 = self.l2[sites].gather(1, idx)  # [S, A]
        W = theta[:, 1:]
        logits = (Z @ W.reshape(S, d, K * A).to(self.dtype)).view(S, N, K, A)
        logits += theta[:, :1].to(self.dtype) + mask  # unused class columns: -inf
        lse = logits.logsumexp(2)  # [S, N, A]
        softmax = logits.sub_(lse[:, :, None]).exp_()  # exp(-inf) = 0 in unused columns
        g_W = (Z.transpose(1, 2) @ softmax.view(S, N, K * A)).view(S, d, K, A).to(torch.float64) / N
        g_b = softmax.mean(1, keepdim=True).to(torch.float64)  # [S, 1, K, A]
        grad = torch.cat([g_b, g_W], 1) - class_sums
        grad[:, 1:] += l2[:, None, None] * W
        label_logits = (class_sums * theta).sum((1, 2))  # mean over rows of each row's true-class logit
        loss = lse.mean(1).to(torch.float64) - label_logits + 0.5 * l2 * (W * W).sum((1, 2))
        return loss, grad * (mask == 0).to(torch.float64)

    def max_abs_original_gradient(self, grad: torch.Tensor) -> torch.Tensor:
        """scikit-learn's stopping quantity [S, P]: the gradient in the original weights and intercepts."""
        S, _, K, P = grad.shape
        g_b, g_U = grad[:, :1], grad[:, 1:]
        g_W = (self.V @ g_U.reshape(S, self.d, K * P)).view(S, self.d, K, P) + self.x_mean.transpose(1, 2)[..., None] * g_b
        return torch.maximum(g_W.abs().amax((1, 2)), g_b.abs().amax((1, 2)))

    def preconditioner(self) -> callable:
        """Apply the inverse of Böhning's bound plus the penalty to a [S, d+1, K, P] tensor."""
        valid = self.valid[:, None].to(torch.float64)  # [S, 1, K, P]
        n_valid = valid.sum(2, keepdim=True)
        l2 = self.l2[:, None, None, :]  # [S, 1, 1, P]
        curv = torch.cat([torch.ones_like(self.eigvals[:, :1]), self.eigvals.clamp_min(0.0)], 1)[:, :, None, None]
        penalized = torch.ones_like(curv)
        penalized[:, 0] = 0.0  # the intercept
        contrast_inv = 1.0 / (0.5 * curv + l2 * penalized)  # directions orthogonal to all-ones over classes
        mean_inv = torch.where(penalized.bool(), 1.0 / l2, 0.0)  # the all-ones direction: the penalty alone

        def apply(g: torch.Tensor) -> torch.Tensor:
            mean = (g * valid).sum(2, keepdim=True) / n_valid
            return ((g - mean) * contrast_inv + mean * mean_inv) * valid

        return apply

    def to_original(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients [S, d, P*K] and intercepts [S, P*K] in the original coordinates (probe-major columns)."""
        S, _, K, P = theta.shape
        coef = (self.V @ theta[:, 1:].reshape(S, self.d, K * P)).view(S, self.d, K, P).transpose(2, 3).reshape(S, self.d, P * K)
        intercept = theta[:, 0].transpose(1, 2).reshape(S, P * K) - (self.x_mean @ coef).squeeze(1)
        return coef, intercept


def fit_logistic(
    X: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    l2: torch.Tensor,
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    history: int = 10,
    compute_dtype: torch.dtype = torch.float32,
) -> LogisticFit:
    """``X`` [S, N, d] float64; ``labels`` [S, P, N] column ids; ``valid`` [S, P, K] real columns;
    ``l2`` [S, P] penalty on the mean loss (1 / (C N) in scikit-learn's terms).

    Each probe stops when its largest absolute gradient entry (original coordinates,
    intercept included: scikit-learn's ``gtol``) is at most ``tol``. ``compute_dtype`` is
    used for the two data products per evaluation; optimizer state and solution are float64.
    """
    S, P = l2.shape
    problem = _Problem(X, labels, valid, l2, compute_dtype)
    precondition = problem.preconditioner()
    all_sites, every = torch.arange(S, device=X.device), torch.arange(P, device=X.device).expand(S, P)

    theta = torch.zeros(S, problem.d + 1, problem.K, P, dtype=torch.float64, device=X.device)
    loss, grad = problem.evaluate(theta, all_sites, every)
    active = problem.max_abs_original_gradient(grad) > tol  # [S, P]
    gamma = torch.ones(S, P, dtype=torch.float64, device=X.device)  # per-probe scale of the preconditioner
    n_iter = torch.zeros(S, P, dtype=torch.long, device=X.device)
    s_hist: list[torch.Tensor] = []
    y_hist: list[torch.Tensor] = []
    rho_hist: list[torch.Tensor] = []
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        n_iter += active
        direction = -_two_loop(grad, s_hist, y_hist, rho_hist, precondition, gamma) * active[:, None, None]
        slope = _dot(grad, direction)  # [S, P], negative
        step = active.to(torch.float64)
        trial, new_loss, new_grad = theta.clone(), loss.clone(), grad.clone()
        pending = active.clone()
        for _ in range(MAX_BACKTRACKS):
            sites, idx, rows = _compact(pending)
            point = _take(theta[sites], idx) + _take((step[:, None, None] * direction)[sites], idx)
            f, g = problem.evaluate(point, sites, idx)
            f0, s0, t0 = (v[sites].gather(1, idx) for v in (loss, slope, step))
            armijo = f <= f0 + ARMIJO * t0 * s0
            approx_wolfe = (_dot(g, _take(direction[sites], idx)) <= -(1 - 2 * APPROX_WOLFE) * s0) & (f <= f0 + LOSS_SLACK * f0.abs())
            accept = rows & (armijo | approx_wolfe)
            _put(trial, sites, idx, point, accept)
            _put(new_grad, sites, idx, g, accept)
            new_loss[sites] = new_loss[sites].scatter(1, idx, torch.where(accept, f, new_loss[sites].gather(1, idx)))
            pending[sites] &= ~_scatter_mask(accept, idx, P)
            if not bool(pending.any()):
                break
            step = torch.where(pending, step * 0.5, step)
        else:  # no acceptable step: the probe is as converged as float precision allows
            active = active & ~pending
        s_new, y_new = trial - theta, new_grad - grad
        theta, loss, grad = trial, new_loss, new_grad
        sy = _dot(s_new, y_new)
        curvature = active & (sy > 0)
        if len(s_hist) == history:
            del s_hist[0], y_hist[0], rho_hist[0]
        s_hist.append(s_new)
        y_hist.append(y_new)
        rho_hist.append(torch.where(curvature, 1.0 / sy.clamp_min(1e-300), 0.0))
        y_My = _dot(y_new, precondition(y_new))
        gamma = torch.where(curvature & (y_My > 0), sy / y_My.clamp_min(1e-300), gamma)
        active = active & (problem.max_abs_original_gradient(grad) > tol)

    coef, intercept = problem.to_original(theta)
    return LogisticFit(coef, intercept, n_iter, ~active)


def _two_loop(grad, s_hist, y_hist, rho_hist, precondition, gamma) -> torch.Tensor:
    """The L-BFGS inverse-Hessian approximation applied to ``grad``, per probe."""
    q = grad.clone()
    alphas = []
    for s_i, y_i, rho_i in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist)):
        a = rho_i * _dot(s_i, q)
        q -= a[:, None, None] * y_i
        alphas.append(a)
    r = precondition(q) * gamma[:, None, None]
    for s_i, y_i, rho_i, a in zip(s_hist, y_hist, rho_hist, reversed(alphas)):
        r += (a - rho_i * _dot(y_i, r))[:, None, None] * s_i
    return r


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-probe inner product of two [S, d+1, K, P] tensors: [S, P]."""
    return (a * b).sum((1, 2))


def _compact(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sites with any selected probe [S'], indices [S', A] that put each such site's
    selected probes first (A = the most any site has), and which slots are real [S', A].
    Padding slots hold distinct unselected probes."""
    sites = mask.any(1).nonzero().squeeze(1)
    mask = mask[sites]
    A = max(int(mask.sum(1).max()), 1)
    idx = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)[:, :A]
    return sites, idx, mask.gather(1, idx)


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Probes ``idx`` [S', A] of a [S', d+1, K, P] tensor."""
    S, D, K, _ = t.shape
    return t.gather(3, idx[:, None, None].expand(S, D, K, idx.shape[1]))


def _put(t: torch.Tensor, sites: torch.Tensor, idx: torch.Tensor, values: torch.Tensor, keep: torch.Tensor) -> None:
    """Write ``values`` [S', d+1, K, A] into probes ``idx`` of ``sites`` of ``t`` where ``keep`` [S', A]."""
    S, D, K, A = values.shape
    part = t[sites]
    current = _take(part, idx)
    t[sites] = part.scatter(3, idx[:, None, None].expand(S, D, K, A), torch.where(keep[:, None, None], values, current))


def _scatter_mask(mask: torch.Tensor, idx: torch.Tensor, P: int) -> torch.Tensor:
    """[S', A] flags at probes ``idx`` (distinct per site) as a [S', P] mask."""
    return torch.zeros(mask.shape[0], P, dtype=torch.bool, device=mask.device).scatter_(1, idx, mask)
