"""Measuring one (model, task) job: :func:`evaluate`, and the stages it runs (decodability, erasure, token pruning,
coherence), each on the model through its adapter. Writing results, figures and scores sit above this package."""

from .pipeline import evaluate, measure_canonical, measure_task

__all__ = ["evaluate", "measure_canonical", "measure_task"]
