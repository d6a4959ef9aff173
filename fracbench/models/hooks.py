"""Hook points: identity modules, named by their module path, where activations are read or edited."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

HookFn = Callable[[torch.Tensor], torch.Tensor]


class HookPoint(nn.Module):
    """Passes its input through unchanged unless a hook function is set (then returns hook(x))."""

    def __init__(self) -> None:
        super().__init__()
        self.fn: HookFn | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.fn is None else self.fn(x)
