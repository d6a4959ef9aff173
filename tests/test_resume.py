"""An interrupted run resumes: finished (model, task) jobs are kept until the results file is written, and the
rerun assembles the same file as an uninterrupted run (timings and creation time aside)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fracbench import runner
from fracbench.cli import main
from fracbench.config import RunConfig
from fracbench.jobs import JOBS_DIR, JobStore, job_key
from fracbench.models import load_model
from fracbench.models.native import NativeAdapter
from fracbench.results import SCHEMA_VERSION, results_json
from fracbench.tasks import get_task

TASKS = "quote_close,bracket_depth,copy_name"
FRACBENCH = "import sys; from fracbench.cli import main; sys.exit(main(sys.argv[1:]))"  # in a fresh process (which sees tiny_zoo)


def comparable(path: Path) -> dict:
    """A results file's document less what differs between two runs of one command: when and how long."""
    doc = json.loads(results_json(path.read_bytes()))
    doc.pop("created")
    doc["provenance"].pop("timings")
    return doc


def results_files(out: Path) -> list[Path]:
    return sorted(out.glob("*.json.xz"))


def test_a_run_that_fails_midway_keeps_the_finished_task_and_the_rerun_resumes_from_it(
        tmp_path: Path, tiny_zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = RunConfig(tasks="quote_close,bracket_depth", n_test=3, n_train=16, restarts=2)
    _, reference = runner.run("dense", config, tmp_path / "reference", progress=False, command=["fracbench"])
    real, measured = runner.measure_canonical, []

    def fail_on_second(canonical, task, *args, **kwargs):
        if measured:
            raise FloatingPointError("NaN in logits")
        measured.append(task.name)
        return real(canonical, task, *args, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(runner, "measure_canonical", fail_on_second)
    with pytest.raises(FloatingPointError):
        runner.run("dense", config, out, progress=False, command=["fracbench"])
    assert results_files(out) == [] and len(JobStore(out)) == 1  # no results file; the finished task is kept

    measured.clear()
    monkeypatch.setattr(runner, "measure_canonical", lambda canonical, task, *a, **k: measured.append(task.name) or real(canonical, task, *a, **k))
    _, resumed = runner.run("dense", config, out, progress=False, command=["fracbench"])
    assert measured == ["bracket_depth"]  # quote_close was read back, not measured again
    assert comparable(resumed) == comparable(reference)  # specificity included: quote_close's circuit was rebuilt exactly
    assert not (out / JOBS_DIR).exists()  # the jobs go once the results file is written


def test_a_killed_run_resumes_to_the_file_an_uninterrupted_run_writes(tmp_path: Path, tiny_zoo: Path) -> None:
    command = [sys.executable, "-c", FRACBENCH, "run", "--model", "dense", "--tasks", TASKS, "--n", "3", "--n-train", "16",
               "--restarts", "2", "--no-progress", "--out", "results"]  # the same command line, run in two directories
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    for where in ("uninterrupted", "killed"):
        (tmp_path / where).mkdir()
    subprocess.run(command, check=True, capture_output=True, env=environment, cwd=tmp_path / "uninterrupted")
    out = tmp_path / "killed" / "results"
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment, cwd=tmp_path / "killed")
    deadline = time.monotonic() + 300
    while not list((out / JOBS_DIR).glob("*.pt")) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert results_files(out) == [] and len(JobStore(out)) >= 1  # killed after its first task, before the results file

    resumed = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"resuming zoo:dense: [12] of 3 tasks already finished", resumed.stderr)
    (reference,), (path,) = results_files(tmp_path / "uninterrupted" / "results"), results_files(out)
    assert comparable(path) == comparable(reference)
    assert not (out / JOBS_DIR).exists()


def test_rerunning_a_finished_command_does_not_run_its_models_again(capsys, tmp_path: Path, tiny_zoo: Path) -> None:
    argv = ["run", "--model", "dense", "--tasks", "quote_close", "--n", "3", "--n-train", "16", "--no-circuits", "--no-progress",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    (written,) = results_files(tmp_path)
    capsys.readouterr()
    assert main(argv) == 0
    assert f"already done in {written}" in capsys.readouterr().out
    assert results_files(tmp_path) == [written]
    assert main([*argv[:-2], "--seed", "1", "--out", str(tmp_path)]) == 0  # other settings are another run
    assert len(results_files(tmp_path)) == 2


def test_a_damaged_job_file_is_measured_again_with_a_warning(tmp_path: Path, tiny_zoo: Path) -> None:
    config = RunConfig(tasks="quote_close", n_test=3, n_train=16, circuits=False)
    version = runner.package_version("fracbench") or "unknown"
    key = job_key(load_model("zoo:dense").info, "float32", get_task("quote_close"), config, SCHEMA_VERSION, version)
    store = JobStore(tmp_path)
    store.root.mkdir()
    store.path(key).write_bytes(b"not a job")
    with pytest.warns(UserWarning, match="cannot be read.*measuring it again"):
        result, _ = runner.run("dense", config, tmp_path, progress=False)
    assert result.tasks["quote_close"].behaviour["test"].n == 3 and len(store) == 0


def test_a_job_is_named_by_everything_its_numbers_depend_on(tiny_adapter: NativeAdapter) -> None:
    task, base = get_task("quote_close"), RunConfig(tasks="quote_close")

    def key(config: RunConfig = base, dtype: str = "float32", schema: str = SCHEMA_VERSION) -> str:
        return job_key(tiny_adapter.info, dtype, task, config, schema, "0")

    assert key() == key(RunConfig(tasks="quote_close,copy_name", lm_eval=True))  # what runs besides the job does not matter
    others = [key(RunConfig(tasks="quote_close", n_test=511)), key(RunConfig(tasks="quote_close", seed=1)),
              key(RunConfig(tasks="quote_close", restarts=4)), key(RunConfig(tasks="quote_close", batch_size=64)),
              key(dtype="bfloat16"), key(schema="11"), job_key(tiny_adapter.info, "float32", get_task("copy_name"), base, SCHEMA_VERSION, "0")]
    assert len({key(), *others}) == 1 + len(others)
