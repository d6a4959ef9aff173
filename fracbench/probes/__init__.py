"""Probes: many linear read-outs fitted at once. They take tensors and know nothing of tasks."""

from .linear import LinearProbes

__all__ = ["LinearProbes"]
