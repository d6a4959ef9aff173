"""Batched nonlinear probes: one hidden-layer MLP per (site, label set), all trained at once.

They exist to report the linear-vs-nonlinear gap: a latent an MLP reads out but a linear
probe does not is present, but not linearly. Every probe starts from the same initialisation
and sees the same minibatches (both functions of ``seed`` alone), the loss is a sum of
per-probe losses and the optimizer's state is per weight, so each probe's fit is the one it
would get trained alone; a probe whose early stopping fires leaves the batch.
"""

from __future__ import annotations

import torch

from .base import BatchedProbes, encode_labels

MAX_CHUNK_ELEMENTS = 1 << 24  # activations held at once when evaluating many examples: 64 MiB of float32
CLASS_BLOCK = 8  # output columns are computed in blocks of 8, see _padded


class MLPProbes(BatchedProbes):
    """MLP probes (d -> hidden ReLU -> K) for S sites x P label sets, trained together.

    Features are standardized per site with the training mean and std. Training is Adam on
    cross-entropy plus an L2 penalty, over minibatches; a held-out slice of the training
    examples (``validation_fraction``) picks each probe's weights: those of the epoch with the
    lowest validation loss. A probe stops once ``patience`` epochs pass without a lower one.

    Fitted attributes: ``coef1_`` [S, P, d, hidden], ``intercept1_`` [S, P, hidden],
    ``coef2_`` [S, P, hidden, K], ``intercept2_`` [S, P, K] (weights on standardized
    features; K = the most classes of any label set, unused columns stay 0), ``mean_`` /
    ``scale_`` [S, d], ``classes_`` [S, P, K], ``n_classes_`` [S, P], ``n_iter_`` [S, P]
    (epochs each probe trained), ``best_epoch_`` [S, P] (the epoch whose weights it kept),
    ``validation_loss_`` [S, P] (its lowest; NaN without a validation slice), ``n_features_in_``.
    """

    def __init__(
        self,
        *,
        hidden: int = 64,
        epochs: int = 200,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        batch_size: int = 256,
        validation_fraction: float = 0.1,
        patience: int = 20,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        # Defaults were chosen on synthetic latents (XOR, radial, product, linear) in isotropic
        # features, d = 16..384, N = 512..6144; docs/metrics.md "MLP probe" has the comparison.
        self.hidden = hidden  # hidden ReLU units
        self.epochs = epochs  # an upper bound: early stopping ends most probes well before it
        self.lr = lr  # Adam's step; 1e-3 ran out of epochs at N = 512 (two steps an epoch)
        self.weight_decay = weight_decay  # L2 penalty weight_decay / 2 * ||W||^2 on both weight matrices (not biases), per probe
        self.batch_size = batch_size  # examples per step; bounds the activations at S * P * batch_size * (d + hidden)
        self.validation_fraction = validation_fraction  # held-out share of fit's examples that selects weights (0: keep the last epoch)
        self.patience = patience  # epochs without a lower validation loss before a probe stops (10 quit on the early plateau of XOR-like latents)
        self.seed = seed  # initialisation, validation split and minibatch order; the same for every probe
        self.device = device  # where to fit; None keeps X's device

    # -- fitting ----------------------------------------------------------------------
    def fit(self, X: torch.Tensor, Y: torch.Tensor) -> MLPProbes:
        self._check_params()
        X, Y = self._check_xy(X, Y, reset=True)
        labels, classes, n_classes = encode_labels(Y)
        S, N, d = X.shape
        P, K, H = classes.shape[1], classes.shape[2], self.hidden
        n_val = max(1, round(self.validation_fraction * N)) if self.validation_fraction > 0 else 0
        if N - n_val < 1:
            raise ValueError(f"N = {N} examples leave none to train on after validation_fraction={self.validation_fraction}")
        device = X.device
        X64 = X.to(torch.float64)
        mean = X64.mean(1)  # [S, d]
        scale = X64.std(1, correction=0)
        scale = torch.where(scale > 0, scale, 1.0)  # a constant feature stays 0 after centring
        Xs = ((X64 - mean[:, None]) / scale[:, None]).to(torch.float32)  # [S, N, d]

        # Everything random comes from one CPU generator, in a fixed order, with shapes that do
        # not involve S, P or K: the same seed gives every probe, batched or alone, on any device,
        # the same initialisation, validation split and minibatch order.
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(N, generator=g).to(device)
        val_idx, train_idx = order[:n_val], order[n_val:]
        bound = d**-0.5  # nn.Linear's default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
        W1 = (torch.rand(d, H, generator=g) * 2 - 1) * bound
        b1 = (torch.rand(H, generator=g) * 2 - 1) * bound

        # The S x P probes as one batch of Q; probe q = s * P + p reads site s. The output layer
        # starts at zero (the random hidden layer breaks the symmetry), so no initialisation
        # depends on how many classes the widest label set has.
        Q, Kp = S * P, _padded(K)
        site = torch.arange(S, device=device).repeat_interleave(P)  # [Q]
        targets = labels.reshape(Q, N)
        invalid = ~(torch.arange(Kp, device=device) < n_classes.reshape(Q, 1))[:, None, :]  # [Q, 1, Kp]
        params = [
            W1.to(device).expand(Q, d, H).clone(),
            b1.to(device).expand(Q, H).clone(),
            torch.zeros(Q, H, Kp, device=device),
            torch.zeros(Q, Kp, device=device),
        ]
        adam = _Adam(params, self.lr, self.weight_decay)
        best = [p.clone() for p in params]  # each probe's weights at its lowest validation loss
        best_loss = torch.full((Q,), float("inf"), device=device)
        best_epoch = torch.zeros(Q, dtype=torch.long, device=device)
        n_iter = torch.full((Q,), self.epochs, dtype=torch.long, device=device)
        active = torch.arange(Q, device=device)  # the probes still training: row i of params is probe active[i]

        n_train = len(train_idx)
        for epoch in range(1, self.epochs + 1):
            shuffled = train_idx[torch.randperm(n_train, generator=g).to(device)]
            site_a, targets_a, invalid_a = site[active], targets[active], invalid[active]
            for start in range(0, n_train, self.batch_size):
                idx = shuffled[start : start + self.batch_size]
                with torch.enable_grad():
                    leaves = [p.detach().requires_grad_() for p in params]
                    logits = _forward(Xs[:, idx][site_a], *leaves, invalid_a)  # [Qa, B, Kp]
                    # each probe's own mean cross-entropy, summed: no probe's gradient involves another
                    loss = _cross_entropy(logits, targets_a[:, idx]).mean(-1).sum()
                    grads = torch.autograd.grad(loss, leaves)
                adam.step(params, grads)
            if n_val == 0:
                continue
            val_loss = _mean_loss(Xs[:, val_idx], site_a, params, invalid_a, targets_a[:, val_idx])  # [Qa]
            improved = val_loss < best_loss[active]
            for kept, p in zip(best, params):
                kept[active] = torch.where(improved.view(-1, *[1] * (p.ndim - 1)), p, kept[active])
            best_loss[active] = torch.where(improved, val_loss, best_loss[active])
            best_epoch[active] = torch.where(improved, epoch, best_epoch[active])
            stopping = epoch - best_epoch[active] >= self.patience
            n_iter[active] = torch.where(stopping, epoch, n_iter[active])
            if bool(stopping.any()):  # the one host sync of an epoch; steps have none
                keep = ~stopping  # stopped probes leave the batch; the others train on as if alone
                active, params = active[keep], [p[keep] for p in params]
                adam.keep(keep)
                if len(active) == 0:
                    break

        if n_val == 0:
            best, best_epoch, best_loss = params, n_iter.clone(), torch.full((Q,), float("nan"), device=device)
        W1, b1, W2, b2 = best
        self.coef1_, self.intercept1_ = W1.reshape(S, P, d, H), b1.reshape(S, P, H)
        self.coef2_, self.intercept2_ = W2[..., :K].reshape(S, P, H, K), b2[..., :K].reshape(S, P, K)
        self.mean_, self.scale_ = mean, scale  # float64, so scoring standardizes exactly as fit did
        self.classes_, self.n_classes_ = classes, n_classes
        self.n_iter_, self.best_epoch_ = n_iter.reshape(S, P), best_epoch.reshape(S, P)
        self.validation_loss_ = best_loss.reshape(S, P)
        self.n_features_in_ = d
        return self

    def _check_params(self) -> None:
        """A ValueError naming the first hyper-parameter out of range."""
        for name in ("hidden", "epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.validation_fraction, (int, float)) and 0 <= self.validation_fraction < 1):
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")

    # -- prediction -------------------------------------------------------------------
    def decision_function(self, X: torch.Tensor) -> torch.Tensor:
        """Logits [S, P, N, K]; -inf in the columns a label set does not use."""
        self._check_fitted()
        X = self._check_x(X)
        Xs = ((X.to(torch.float64) - self.mean_[:, None]) / self.scale_[:, None]).to(torch.float32)
        S, P, d, H = self.coef1_.shape
        K, Q, N = self.classes_.shape[2], S * P, X.shape[1]
        pad = (0, _padded(K) - K)  # as in fit: zero columns, masked
        W2, b2 = torch.nn.functional.pad(self.coef2_, pad), torch.nn.functional.pad(self.intercept2_, pad)
        params = [self.coef1_.reshape(Q, d, H), self.intercept1_.reshape(Q, H), W2.reshape(Q, H, -1), b2.reshape(Q, -1)]
        invalid = ~torch.nn.functional.pad(self._valid_columns(), pad).reshape(Q, 1, -1)
        site = torch.arange(S, device=Xs.device).repeat_interleave(P)
        step = _chunk_size(Q, d, H)
        with torch.no_grad():
            logits = [_forward(Xs[:, start : start + step][site], *params, invalid) for start in range(0, N, step)]
        return torch.cat(logits, 1)[..., :K].reshape(S, P, N, K)


class _Adam:
    """torch.optim.Adam's update with coupled weight_decay (an L2 penalty) on the weight
    matrices, not the biases, whose per-probe state can drop the probes that stopped."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.decay = [weight_decay if p.ndim == 3 else 0.0 for p in params]  # weights are [Q, in, out], biases [Q, out]
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: tuple[torch.Tensor, ...]) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        correction1, correction2 = 1 - beta1**self.t, 1 - beta2**self.t
        for p, grad, m, v, decay in zip(params, grads, self.m, self.v, self.decay):
            if decay:
                grad = grad + decay * p
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            p.addcdiv_(m, (v.sqrt() / correction2**0.5).add_(self.eps), value=-self.lr / correction1)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep the state of the probes in ``rows`` (a mask); the step count is shared by all."""
        self.m = [m[rows] for m in self.m]
        self.v = [v[rows] for v in self.v]


def _padded(K: int) -> int:
    """K rounded up to a multiple of CLASS_BLOCK. The output layer's matrix products then have
    the same shape whatever the widest label set in the batch, so a probe's arithmetic (its
    rounding included) is bit for bit the same batched or alone when every label set has
    <= CLASS_BLOCK classes; padded columns are masked like any unused one."""
    return -(-K // CLASS_BLOCK) * CLASS_BLOCK


def _chunk_size(n_probes: int, d: int, hidden: int) -> int:
    """Examples per chunk so that n_probes probes hold at most MAX_CHUNK_ELEMENTS inputs or activations."""
    return max(1, MAX_CHUNK_ELEMENTS // (n_probes * max(d, hidden)))


def _forward(Xq: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, invalid: torch.Tensor) -> torch.Tensor:
    """Logits [Q, B, K] of each probe's standardized features ``Xq`` [Q, B, d]; -inf where ``invalid`` [Q, 1, K]."""
    hidden = torch.relu(torch.baddbmm(b1[:, None, :], Xq, W1))  # [Q, B, H]
    return torch.baddbmm(b2[:, None, :], hidden, W2).masked_fill(invalid, float("-inf"))


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy [Q, B] of masked logits [Q, B, K] and column ids [Q, B]."""
    return -logits.log_softmax(-1).gather(-1, labels[..., None]).squeeze(-1)


@torch.no_grad()
def _mean_loss(Xs: torch.Tensor, site: torch.Tensor, params: list[torch.Tensor], invalid: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy [Q] of the probes reading ``site`` [Q] on standardized ``Xs`` [S, n, d], in chunks."""
    n, step = Xs.shape[1], _chunk_size(len(site), Xs.shape[2], params[0].shape[2])
    total = torch.zeros(len(site), device=Xs.device)
    for start in range(0, n, step):
        chunk = slice(start, start + step)
        total += _cross_entropy(_forward(Xs[:, chunk][site], *params, invalid), targets[:, chunk]).sum(-1)
    return total / n
