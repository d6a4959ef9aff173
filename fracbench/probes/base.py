"""What every batched probe family shares: the [S, N, d] / [S, P, N] contract, its input
checks, label encoding, and prediction from a decision function."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from ..device import check_device


class BatchedProbes(ABC):
    """Probes for S sites x P label sets. Subclasses implement ``fit`` and ``decision_function``.

    Fitted attributes every family sets: ``classes_`` [S, P, K] (the label of each column,
    -1 where unused; K = the most classes of any label set), ``n_classes_`` [S, P],
    ``n_features_in_``.
    """

    device: str | None = None

    @abstractmethod
    def fit(self, X: torch.Tensor, Y: torch.Tensor) -> BatchedProbes:
        """Fit every (site, label set) probe on X [S, N, d], Y [S, P, N] or [P, N]; returns self."""

    @abstractmethod
    def decision_function(self, X: torch.Tensor) -> torch.Tensor:
        """Scores [S, P, N, K]; -inf in the columns a label set does not use."""

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Class labels [S, P, N]."""
        column = self.decision_function(X).argmax(-1)  # [S, P, N]
        return self.classes_.gather(2, column)

    def score(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Accuracy [S, P] on (X, Y); Y as in ``fit``. A label never seen in fit is an error."""
        self._check_fitted()
        X, Y = self._check_xy(X, Y)
        known = (Y[..., None] == self.classes_[:, :, None, :]).any(-1)
        if not bool(known.all()):
            s, p, n = (~known).nonzero()[0].tolist()
            raise ValueError(
                f"Y holds label {int(Y[s, p, n])} (label set {p}, example {n}) that label set {p} never had in fit; "
                "a probe cannot predict a class it was not trained on"
            )
        return (self.predict(X) == Y).to(torch.float64).mean(-1)

    def _valid_columns(self) -> torch.Tensor:
        """[S, P, K]: which columns are real classes of their label set."""
        return torch.arange(self.classes_.shape[2], device=self.classes_.device) < self.n_classes_[..., None]

    # -- validation -------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError(f"this {type(self).__name__} instance is not fitted yet; call fit(X, Y) first")

    def _check_x(self, X: torch.Tensor, reset: bool = False) -> torch.Tensor:
        """``reset``: fitting anew, so the feature count of an earlier fit does not apply."""
        if not isinstance(X, torch.Tensor) or not X.is_floating_point():
            raise TypeError(f"X must be a floating-point torch tensor [S, N, d], got {type(X).__name__} {getattr(X, 'dtype', '')}")
        if X.ndim != 3:
            raise ValueError(f"X must be [S, N, d] (sites, examples, features), got shape {tuple(X.shape)}")
        if X.shape[0] == 0 or X.shape[2] == 0:
            raise ValueError(f"X has no sites or no features: shape {tuple(X.shape)}")
        if X.shape[1] == 0:
            raise ValueError("X has no examples (N = 0): the split it came from is empty")
        if not reset and hasattr(self, "n_features_in_") and X.shape[2] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[2]} features; the probes were fitted on {self.n_features_in_}")
        if not bool(torch.isfinite(X.sum())) and not bool(torch.isfinite(X).all()):  # one reduction in the common case
            raise ValueError(f"X holds {int((~torch.isfinite(X)).sum())} NaN or infinite values; probes need finite features")
        if self.device is not None:
            X = X.to(check_device(self.device))
        return X

    def _check_xy(self, X: torch.Tensor, Y: torch.Tensor, reset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        X = self._check_x(X, reset)
        if not isinstance(Y, torch.Tensor) or Y.is_floating_point() or Y.dtype == torch.bool:
            raise TypeError(f"Y must be an integer torch tensor of class ids, got {type(Y).__name__} {getattr(Y, 'dtype', '')}")
        if Y.ndim == 2:
            Y = Y[None].expand(X.shape[0], -1, -1)
        if Y.ndim != 3 or Y.shape[0] != X.shape[0] or Y.shape[2] != X.shape[1]:
            raise ValueError(
                f"Y must be [P, N] or [S, P, N] matching X {tuple(X.shape)} (S = {X.shape[0]}, N = {X.shape[1]}), got {tuple(Y.shape)}"
            )
        if Y.shape[1] == 0:
            raise ValueError("Y has no label sets (P = 0)")
        if bool((Y < 0).any()):
            raise ValueError(f"Y holds negative labels (smallest {int(Y.min())}); classes are 0..K-1")
        return X, Y.to(X.device, torch.long)


def encode_labels(Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per (site, label set): labels as column indices [S, P, N], the label of each column
    [S, P, K] (-1 where unused) and the number of classes [S, P]. Columns follow sorted labels."""
    L = int(Y.max()) + 1
    present = torch.zeros(*Y.shape[:2], L, dtype=torch.bool, device=Y.device).scatter_(2, Y, True)  # [S, P, L]
    n_classes = present.sum(-1)  # [S, P]
    if bool((n_classes < 2).any()):
        s, p = (n_classes < 2).nonzero()[0].tolist()
        raise ValueError(f"label set {p} (site {s}) has a single class ({int(Y[s, p, 0])}); a probe needs at least two")
    column_of_label = present.cumsum(-1) - 1  # [S, P, L]
    labels = column_of_label.gather(2, Y)
    K = int(n_classes.max())
    label_ids = torch.arange(L, device=Y.device).expand_as(present)
    present_first = torch.where(present, label_ids, L + label_ids).sort(-1).values[..., :K]  # present labels, ascending
    used = torch.arange(K, device=Y.device) < n_classes[..., None]
    classes = torch.where(used, present_first, -1)
    return labels, classes, n_classes
