"""Probes: many linear (and MLP) read-outs fitted at once. They take tensors and know nothing of tasks."""

from .linear import LinearProbes
from .mlp import MLPProbes

__all__ = ["LinearProbes", "MLPProbes"]
