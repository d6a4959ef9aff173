"""What the pipeline around the measurements costs: the job store and the executors.

Run: ``python -m pytest benchmarks/test_executors.py --benchmark-only -s`` with nothing else heavy on the machine.
Three ways to measure zoo:dense's six tasks (behaviour and probes; n 64, so the overhead is visible): a bare loop of
``measure_task`` (no files, the measurements alone), ``run`` with the local executor (job store, specificity, the
results file and figures), and ``run`` with the Ray executor on a local cluster of this machine's CPUs (started
before the timing; each worker loads the model once). The ratios to the bare loop and the Ray overhead per job go to
extra_info and are printed; nothing asserts a time.
"""

from __future__ import annotations

import os

import pytest
import ray

from fracbench.config import RunConfig
from fracbench.executors import RayExecutor
from fracbench.models import load_model
from fracbench.evaluate import measure_task
from fracbench.runner import run
from fracbench.tasks import get_task

CONFIG = RunConfig(n_test=64, n_train=64, circuits=False)
TIMES: dict[str, float] = {}


def bare_loop() -> None:
    adapter = load_model("zoo:dense")
    for name in CONFIG.tasks:
        measure_task(adapter, get_task(name), CONFIG)


@pytest.mark.parametrize("way", ["bare measure_task loop", "run, local executor", "run, ray executor"])
def test_pipeline_overhead(benchmark, tmp_path, way: str) -> None:
    if way == "run, ray executor" and not ray.is_initialized():
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    executor = RayExecutor() if way == "run, ray executor" else None
    if way == "bare measure_task loop":
        benchmark.pedantic(bare_loop, rounds=1, iterations=1)
    else:
        counter = iter(range(100))
        benchmark.pedantic(lambda: run("zoo:dense", CONFIG, tmp_path / str(next(counter)), progress=False, executor=executor),
                           rounds=1, iterations=1)
    TIMES[way] = benchmark.stats.stats.min
    if len(TIMES) == 3:
        bare, local, remote = (TIMES[k] for k in ("bare measure_task loop", "run, local executor", "run, ray executor"))
        jobs = len(CONFIG.tasks)
        benchmark.extra_info.update({"local / bare": round(local / bare, 3), "ray / local": round(remote / local, 3),
                                     "ray overhead per job (s)": round((remote - local) / jobs, 2), "jobs": jobs,
                                     "ray CPUs": os.cpu_count()})
        print(f"\nbare {bare:.1f} s, local {local:.1f} s ({local / bare:.3f}x), ray {remote:.1f} s ({remote / local:.3f}x of local; "
              f"{(remote - local) / jobs:+.2f} s per job over {jobs} jobs on {os.cpu_count()} CPUs)")
        ray.shutdown()
