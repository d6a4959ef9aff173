"""A whole `fracbench run` on one zoo model over every task: behaviour, probes, circuits, stress, OOD.

Run: ``python -m pytest benchmarks/test_run.py --benchmark-only -s``. The circuit issue's goal is
5 minutes on the 2-core reference machine. The seconds of each task and of each stage go to
pytest-benchmark's extra_info (and are printed), with the ratio of a whole run to the
behaviour-only run measured alongside; nothing here asserts a time.
"""

from __future__ import annotations

import pytest

from fracbench.config import RunConfig
from fracbench.runner import run

TIMES: dict[str, float] = {}


@pytest.mark.parametrize("stage", ["behaviour only", "all"])
def test_run_dense_zoo_model(benchmark, tmp_path, stage: str) -> None:
    full = stage == "all"
    result, _ = benchmark.pedantic(
        lambda: run("zoo:dense", RunConfig(probes=full, circuits=full), tmp_path, progress=False), rounds=1, iterations=1
    )
    TIMES[stage] = benchmark.stats.stats.min
    timings = result.provenance.timings
    benchmark.extra_info.update({f"seconds {task}": round(s, 1) for task, s in timings.tasks.items()})
    stages: dict[str, float] = {}
    for per_task in timings.stages.values():
        for name, seconds in per_task.items():
            stages[name] = stages.get(name, 0.0) + seconds
    if timings.specificity is not None:
        stages["specificity"] = timings.specificity
    benchmark.extra_info["seconds by stage"] = {name: round(s, 1) for name, s in stages.items()}
    print(f"\n{stage}: " + ", ".join(f"{name} {s:.0f} s" for name, s in stages.items()))
    if full:
        benchmark.extra_info["verdicts"] = {name: t.scores.verdict for name, t in result.tasks.items()}
        benchmark.extra_info["ratio to behaviour only"] = TIMES["all"] / TIMES.get("behaviour only", float("nan"))
        print(f"\nfracbench run --model dense (all tasks, n = 512): {TIMES['all']:.0f} s "
              f"({TIMES['all'] / 60:.1f} min; behaviour only {TIMES.get('behaviour only', float('nan')):.0f} s)")
