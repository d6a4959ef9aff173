"""`--executor ray`: every (model, task) job a Ray task on a real local Ray cluster, with the results of the local
executor, byte for byte (timings aside), even when a worker is killed mid-job."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import ray

from fracbench import runner
from fracbench.cli import main
from fracbench.config import RunConfig
from fracbench.executors import RayExecutor
from fracbench.results import results_json

pytestmark = pytest.mark.xdist_group("ray")  # one local Ray cluster at a time, on one pytest-xdist worker

CONFIG = RunConfig(tasks="quote_close,bracket_depth,copy_name", n_test=3, n_train=16, restarts=2)


def comparable(path: Path) -> dict:
    doc = json.loads(results_json(path.read_bytes()))
    doc.pop("created")
    doc["provenance"].pop("timings")
    return doc


def test_a_ray_cluster_that_does_not_answer_is_named_before_any_work(capsys, tmp_path: Path, tiny_zoo: Path) -> None:
    assert not ray.is_initialized()
    code = main(["run", "--model", "dense", "--tasks", "quote_close", "--n", "3", "--no-progress", "--out", str(tmp_path / "out"),
                 "--executor", "ray", "--address", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2 and "fracbench: error: no Ray cluster answers at --address '127.0.0.1:1'" in err and "Traceback" not in err
    assert main(["run", "--model", "dense", "--address", "127.0.0.1:1", "--out", str(tmp_path)]) == 2
    assert "--address names a Ray cluster; give it with --executor ray" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster with this machine's two CPUs, started by the test and shut down after."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def local_reference(tmp_path: Path, tiny_zoo: Path) -> dict:
    _, path = runner.run("dense", CONFIG, tmp_path / "local", progress=False, command=["fracbench"])
    return comparable(path)


def test_ray_jobs_give_the_local_executor_s_results_file(ray_cluster, local_reference: dict, tmp_path: Path) -> None:
    _, path = runner.run("dense", CONFIG, tmp_path / "ray", progress=False, command=["fracbench"], executor=RayExecutor())
    assert comparable(path) == local_reference


def test_a_worker_killed_mid_job_is_retried_and_the_results_are_unchanged(ray_cluster, local_reference: dict,
                                                                          tmp_path: Path) -> None:
    outcome: dict = {}

    def run_on_ray() -> None:
        outcome["path"] = runner.run("dense", CONFIG, tmp_path / "ray", progress=False, command=["fracbench"],
                                     executor=RayExecutor())[1]

    thread = threading.Thread(target=run_on_ray)
    thread.start()
    killed, deadline = None, time.monotonic() + 300
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        for process in psutil.process_iter(["cmdline"]):
            if any("ray::measure_job" in part for part in process.info["cmdline"] or []):
                process.send_signal(signal.SIGKILL)
                killed = process.pid
                break
        time.sleep(0.05)
    thread.join()
    assert killed is not None, "no worker was seen running a job"
    assert comparable(outcome["path"]) == local_reference
