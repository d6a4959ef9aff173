"""Where a run's (model, task) jobs are measured: in this process, in order (``local``), or as Ray Core tasks on a
Ray cluster (``ray``). Either way each job is :func:`fracbench.runner.measure_job`, a function of the model, the task
and the config alone, so both give the same results file; the run stores and assembles what comes back.

Ray is an optional extra (``pip install "fracbench[ray]"``), imported only when the ``ray`` executor is used.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Protocol

from .config import RunConfig
from .jobs import FinishedJob, first_line
from .models import ModelSpec

EXECUTORS = ("local", "ray")
RAY_RETRIES = 3  # a job whose worker dies (killed, out of memory, a lost node) is run again this many times
FORWARDED_ENV = ("FRACBENCH_CHECKPOINTS",)  # the driver's settings a worker must share to load the same model
CONNECT_TIMEOUT = 5.0  # seconds to wait for a cluster's head to answer
ADDRESS_HELP = ("give the head's host:port (`ray start --head` prints it; 6379 by default) or 'auto', or leave --address out "
                "for a local cluster on this machine")

Measure = Callable[[str], FinishedJob]  # task name -> its finished job, measured in this process


class Executor(Protocol):
    def run_jobs(self, spec: ModelSpec | None, tasks: list[str], config: RunConfig,
                 measure_here: Measure) -> Iterator[tuple[str, FinishedJob]]:
        """Each of ``tasks``' finished job, as it finishes (``spec`` None: a model in memory, measured only here)."""


class LocalExecutor:
    """Every job in this process, one after another, on the model the run has loaded."""

    def run_jobs(self, spec: ModelSpec | None, tasks: list[str], config: RunConfig,
                 measure_here: Measure) -> Iterator[tuple[str, FinishedJob]]:
        for name in tasks:
            yield name, measure_here(name)


class RayExecutor:
    """Every job a Ray Core task (one CPU, or one GPU when the device is cuda) on the cluster at ``address`` (None: the
    cluster this process is connected to, else a local one with this machine's CPUs). Each worker loads the model from
    its spec, so an ``hf:`` directory must be readable at the same path on every node (a shared file system)."""

    def __init__(self, address: str | None = None, retries: int = RAY_RETRIES) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError('--executor ray needs Ray: pip install "fracbench[ray]"') from None
        self.ray, self.retries = ray, retries
        if ray.is_initialized():
            connected = ray.get_runtime_context().gcs_address
            if address not in (None, "auto", connected):
                raise ValueError(f"this process is already connected to the Ray cluster at {connected}, not {address!r}")
            return
        if address not in (None, "auto"):
            check_reachable(address)  # ray.init retries an unreachable address for minutes
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
            where = f"at {address!r}" if address else "on this machine"
            raise ValueError(f"cannot connect to a Ray cluster {where} ({type(err).__name__}: {first_line(err)}); {ADDRESS_HELP}") from None

    def run_jobs(self, spec: ModelSpec, tasks: list[str], config: RunConfig,
                 measure_here: Measure) -> Iterator[tuple[str, FinishedJob]]:
        from .runner import measure_job

        ray = self.ray
        forwarded = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        remote = ray.remote(measure_job).options(num_cpus=1, num_gpus=1 if config.device.startswith("cuda") else 0,
                                                  max_retries=self.retries, retry_exceptions=False,
                                                  runtime_env={"env_vars": forwarded} if forwarded else None)
        pending = {remote.remote(spec, name, config): name for name in tasks}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                name = pending.pop(done[0])
                yield name, ray.get(done[0])
        finally:
            for ref in pending:  # an error or Ctrl-C: the jobs not yet finished are not left running
                ray.cancel(ref, force=True)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """A ValueError naming ``address`` (host:port, or ray://host:port) unless something listens there."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--address {address!r} is not host:port; {ADDRESS_HELP}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ValueError(f"no Ray cluster answers at --address {address!r} ({err.strerror or err}); {ADDRESS_HELP}") from None


def make_executor(kind: str = "local", address: str | None = None) -> Executor:
    """The executor ``kind`` names (:data:`EXECUTORS`); ``address`` is the Ray cluster's."""
    if kind not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    if kind == "local":
        if address is not None:
            raise ValueError("--address names a Ray cluster; give it with --executor ray")
        return LocalExecutor()
    return RayExecutor(address)

