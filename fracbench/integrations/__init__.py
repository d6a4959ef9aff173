"""Integrations with the tools fracbench's users already run: lm-evaluation-harness and pytest."""
