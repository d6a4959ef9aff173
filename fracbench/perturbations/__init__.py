"""Stress tests for models and circuits: input, activation and weight perturbations, OOD sweeps, sparsity diagnostics."""
