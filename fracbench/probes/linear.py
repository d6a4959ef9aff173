"""Batched linear probes: every (site, label set) pair fitted in one pass, scikit-learn exact.

``X`` is ``[S, N, d]`` (S sites sharing N examples), ``Y`` is ``[S, P, N]`` or ``[P, N]``
(P label sets, broadcast over sites). ``kind="ridge"`` reproduces scikit-learn's
``RidgeClassifierCV`` (one-vs-all targets in {-1, +1}, unpenalized intercept, the alpha
with the smallest exact leave-one-out squared error): one eigendecomposition of each
site's centred Gram matrix serves every label set and every alpha. ``kind="logistic"``
minimizes ``LogisticRegression``'s objective for every probe with a batched, preconditioned
L-BFGS (:mod:`.logistic`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from .base import BatchedProbes, encode_labels
from .logistic import fit_logistic
from .ridge import RidgeStatistics, fit_ridge, one_vs_all_targets

DEFAULT_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)
KINDS = ("ridge", "logistic")
HELD_OUT_EVERY = 5  # partial_fit: by default every 5th row streamed in chooses alpha


class LinearProbes(BatchedProbes):
    """Linear probes for S sites x P label sets, fitted together.

    Fitted attributes: ``coef_`` [S, P, K, d], ``intercept_`` [S, P, K] (K = the most classes
    of any label set; columns past a label set's own classes are unused), ``classes_``
    [S, P, K] (the label of each column, -1 where unused), ``n_classes_`` [S, P],
    ``alpha_`` [S, P] and ``loo_mse_`` [S, P, A] (ridge), ``n_iter_`` [S, P] (logistic),
    ``n_features_in_``.
    """

    def __init__(
        self,
        *,
        kind: str = "ridge",
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        C: float = 1.0,
        max_iter: int = 1000,
        tol: float = 1e-4,
        device: str | None = None,
    ) -> None:
        self.kind = kind  # "ridge" (RidgeClassifierCV) or "logistic" (multinomial LogisticRegression)
        self.alphas = alphas  # ridge: the penalties leave-one-out chooses among
        self.C = C  # logistic: inverse penalty, scikit-learn's convention
        self.max_iter = max_iter  # logistic: L-BFGS iterations per probe, as scikit-learn's
        # logistic: stop a probe when its largest gradient entry is at most this (scikit-learn's tol and
        # default). Its stopping points can lie 0.4 accuracy points from the optimum; 1e-5 gets within 0.15.
        self.tol = tol
        self.device = device  # where to fit; None keeps X's device

    # -- fitting ----------------------------------------------------------------------
    def fit(self, X: torch.Tensor, Y: torch.Tensor) -> LinearProbes:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        X, Y = self._check_xy(X, Y, reset=True)
        self.__dict__.pop("stats_", None)  # a full fit ends any stream
        labels, classes, n_classes = encode_labels(Y)
        valid = torch.arange(classes.shape[-1], device=X.device) < n_classes[..., None]  # [S, P, K] real class columns
        fit = self._fit_ridge if self.kind == "ridge" else self._fit_logistic
        # ridge keeps float32 data for its data products (float64 Gram and solution); logistic works from float64
        X = X.to(torch.float64 if self.kind == "logistic" or X.dtype == torch.float64 else torch.float32)
        coef, intercept = fit(X, labels, valid, n_classes)  # [S, d, P*K], [S, P*K]
        S, d = X.shape[0], X.shape[2]
        P, K = classes.shape[1], classes.shape[2]
        self.coef_ = coef.reshape(S, d, P, K).permute(0, 2, 3, 1).contiguous()  # [S, P, K, d]
        self.intercept_ = intercept.reshape(S, P, K)
        self.classes_, self.n_classes_ = classes, n_classes
        self.n_features_in_ = d
        return self

    def partial_fit(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        classes: Sequence[int] | Sequence[Sequence[int]] | None = None,
        held_out: torch.Tensor | None = None,
    ) -> LinearProbes:
        """Streaming ridge: add a batch of rows; memory stays O(S d (d + P K)) however many rows come.

        ``classes`` (first call only): every label the label sets will ever hold, one list for
        all label sets or one list per label set. ``held_out`` [N] bool marks the rows that choose
        alpha (their squared error, exactly, from sufficient statistics); by default every
        ``HELD_OUT_EVERY``-th row counted over all calls. The chosen alpha is refitted on all rows.
        After every call the probes are usable (``predict``, ``score``) as after ``fit``.
        """
        if self.kind != "ridge":
            raise ValueError(f"partial_fit streams ridge probes only; kind is {self.kind!r} (use fit, or kind='ridge')")
        first = not hasattr(self, "stats_")
        X, Y = self._check_xy(X, Y, reset=first)
        S, P, N = Y.shape
        # every check comes before the statistics change: a refused call leaves the stream as it was
        if first:
            if classes is None:
                raise ValueError("the first partial_fit call needs classes: every label the label sets will hold (e.g. classes=[0, 1, 2])")
            table = self._classes_tensor(classes, S, P, X.device)
            if bool(((table >= 0).sum(-1) < 2).any()):
                raise ValueError(f"classes must name at least two labels per label set, got {classes!r}")
        else:
            table = self.classes_
            if Y.shape[:2] != table.shape[:2]:
                raise ValueError(f"Y has {P} label sets over {S} sites; the first partial_fit call had {table.shape[1]} over {table.shape[0]}")
            if classes is not None and not torch.equal(self._classes_tensor(classes, S, P, X.device), table):
                raise ValueError("classes differ from the first partial_fit call's; pass them on the first call only")
        if held_out is None:
            seen = 0 if first else self.n_rows_seen_
            held_out = (torch.arange(N, device=X.device) + seen) % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
        elif not isinstance(held_out, torch.Tensor) or held_out.dtype != torch.bool or held_out.shape != (N,):
            raise ValueError(f"held_out must be a bool tensor [N] = [{N}], got {getattr(held_out, 'dtype', type(held_out).__name__)} {tuple(getattr(held_out, 'shape', ()))}")
        known = Y[..., None] == table[:, :, None, :]  # [S, P, N, K]
        if not bool(known.any(-1).all()):
            s, p, n = (~known.any(-1)).nonzero()[0].tolist()
            raise ValueError(f"Y holds label {int(Y[s, p, n])} (label set {p}, row {n}) that is not in classes {table[s, p][table[s, p] >= 0].tolist()}")
        alphas = self._checked_alphas(X.device)
        held_out_rows = int(held_out.sum()) + (0 if first else int(self.stats_.n[1]))
        if held_out_rows == 0 and len(alphas) > 1:
            raise ValueError(
                f"no held-out rows yet to choose among {len(alphas)} alphas: pass more rows (every {HELD_OUT_EVERY}th row is held out "
                "by default) or mark some with held_out"
            )
        if int((~held_out).sum()) + (0 if first else int(self.stats_.n[0])) == 0:
            raise ValueError("no rows to fit: every row so far is held out; pass rows with held_out=False")
        if first:
            self.classes_, self.n_classes_ = table, (table >= 0).sum(-1)
            self.stats_ = RidgeStatistics(S, X.shape[2], P * table.shape[2], X.device)
            self.n_rows_seen_ = 0
        labels = known.to(torch.uint8).argmax(-1)  # [S, P, N] column ids
        self.stats_.update(X, one_vs_all_targets(labels, self._valid_columns()).reshape(S, N, -1), held_out.to(X.device))
        self.n_rows_seen_ += N
        coef, intercept, best, held_out_mse = self.stats_.solve(alphas, self.n_classes_, table.shape[2])
        d, K = X.shape[2], table.shape[2]
        self.coef_ = coef.reshape(S, d, P, K).permute(0, 2, 3, 1).contiguous()
        self.intercept_ = intercept.reshape(S, P, K)
        self.alpha_, self.held_out_mse_ = alphas[best], held_out_mse
        self.n_features_in_ = d
        return self

    @staticmethod
    def _classes_tensor(classes, S: int, P: int, device: torch.device) -> torch.Tensor:
        """[S, P, K] sorted labels per label set, -1 padded."""
        try:
            per_set = [sorted({int(c) for c in classes})] * P if all(isinstance(c, int) for c in classes) else [sorted({int(c) for c in cs}) for cs in classes]
        except TypeError:
            raise ValueError(f"classes must be a list of labels or one list per label set, got {classes!r}") from None
        if len(per_set) != P:
            raise ValueError(f"classes has {len(per_set)} lists for {P} label sets")
        if any(c < 0 for cs in per_set for c in cs):
            raise ValueError(f"classes must be non-negative labels, got {classes!r}")
        K = max(len(cs) for cs in per_set)
        table = torch.tensor([cs + [-1] * (K - len(cs)) for cs in per_set], dtype=torch.long, device=device)
        return table[None].expand(S, P, K).contiguous()

    def _fit_ridge(self, X: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, n_classes: torch.Tensor):
        """RidgeClassifierCV: one-vs-all {-1, +1} targets, the alpha with the least exact LOO error."""
        alphas = self._checked_alphas(X.device)
        fit = fit_ridge(X, labels, valid, n_classes, alphas)
        self.alpha_ = alphas[fit.alpha_index]
        self.loo_mse_ = fit.loo_mse
        return fit.coef, fit.intercept

    def _checked_alphas(self, device: torch.device) -> torch.Tensor:
        alphas = torch.as_tensor(self.alphas, dtype=torch.float64, device=device)
        if alphas.ndim != 1 or len(alphas) == 0 or not bool((alphas > 0).all()) or not bool(torch.isfinite(alphas).all()):
            raise ValueError(f"alphas must be a non-empty sequence of positive finite numbers, got {self.alphas!r}")
        return alphas

    def _fit_logistic(self, X: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, n_classes: torch.Tensor):
        """LogisticRegression's objective for every probe (see :mod:`.logistic`).

        scikit-learn fits two classes with one weight vector w; the two-column softmax with C / 2
        has the same minimizer (w = w_1 - w_0, w_0 = -w_1), so K = 2 label sets use C / 2.
        """
        if not self.C > 0:
            raise ValueError(f"C must be positive, got {self.C!r}")
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, got {self.tol!r}")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter!r}")
        N = X.shape[1]
        l2 = torch.where(n_classes == 2, 2.0, 1.0).to(torch.float64) / (self.C * N)
        # float32 data products resolve gradients to about 1e-7; tighter tolerances need float64
        dtype = torch.float32 if self.tol >= 1e-6 else torch.float64
        fit = fit_logistic(X, labels, valid, l2, tol=self.tol, max_iter=int(self.max_iter), compute_dtype=dtype)
        self.n_iter_ = fit.n_iter
        if not bool(fit.converged.all()):
            warnings.warn(
                f"{int((~fit.converged).sum())} of {fit.converged.numel()} logistic probes stopped at max_iter={self.max_iter} "
                f"with a gradient above tol={self.tol}; they may be off the optimum. Raise max_iter, or standardize the features",
                RuntimeWarning,
                stacklevel=3,
            )
        return fit.coef, fit.intercept

    # -- prediction -------------------------------------------------------------------
    def decision_function(self, X: torch.Tensor) -> torch.Tensor:
        """Scores [S, P, N, K]; -inf in the columns a label set does not use."""
        self._check_fitted()
        X = self._check_x(X)
        scores = torch.einsum("snd,spkd->spnk", X.to(torch.float64), self.coef_) + self.intercept_[:, :, None, :]
        return scores.masked_fill(~self._valid_columns()[:, :, None, :], float("-inf"))
