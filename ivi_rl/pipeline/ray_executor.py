"""The Ray executor: one Ray task per pipeline task on a Ray cluster.

Start the cluster with Ray's own commands (``ray start --head`` on one machine, ``ray start
--address HEAD:6379`` on the others; every node needs ``pip install "ivi-rl[ray]"``), then
run the pipeline on any node with ``--executor ray --address HEAD:6379``. Without an address
the pipeline joins the cluster this machine belongs to, or starts a one-machine cluster.

- Each task asks Ray for ``cpus_per_task`` CPUs and ``gpus_per_task`` GPUs and runs with that
  many torch threads; the cluster must have them (checked before anything is submitted).
- Results travel back through Ray's object store: the driver alone writes the output folder,
  so the nodes share no filesystem with it. Bandit datasets are read on the node that runs
  the task, from the config's ``data_dir`` or that node's ``$IVI_RL_DATA`` (each node its
  own copy: place the data files there, or let the loaders download them).
- A task whose worker process or node dies is retried (``max_retries``); a task that raises
  is not: its error stops the run. Results already stored are never lost, and a rerun
  resumes from them. Ctrl-C cancels the tasks still running.
- Progress: tasks report step counts to one small actor, which the driver reads twice a
  second, so the progress bar counts steps across the cluster.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ConfigError
from .executors import Executor, OnDone, TaskFn

__all__ = ["RayExecutor", "check_reachable", "require_ray"]

INSTALL_HINT = 'pip install "ivi-rl[ray]"'


def require_ray():
    """The ``ray`` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"executor='ray' needs Ray, which is not installed; install it with: {INSTALL_HINT}"
        ) from None
    return ray


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``host:port`` address must accept a connection (Ray itself would retry for minutes);
    other forms (``auto``, ``ray://...``) are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ConfigError(
            f"address={address!r}: no Ray cluster answers there ({err.strerror or err}); "
            "start one with `ray start --head --port PORT` and pass HEAD_IP:PORT"
        ) from None


class RayExecutor(Executor):
    def __init__(
        self,
        address: str | None = None,
        cpus_per_task: int = 1,
        gpus_per_task: float = 0.0,
        max_retries: int = 3,
    ) -> None:
        self.address, self.max_retries = address, max_retries
        self.threads, self.gpus = cpus_per_task, gpus_per_task  # a CPU per torch thread

    def check(self) -> None:
        """Ray is installed and a ``host:port`` address answers (Ray itself would retry for
        minutes)."""
        require_ray()
        if self.address is not None:
            check_reachable(self.address)

    def run(
        self, fn: TaskFn, tasks: Sequence, on_done: OnDone, progress: Callable[[int], None]
    ) -> None:
        if not tasks:
            return
        ray = require_ray()
        started_here = not ray.is_initialized()
        if started_here:
            self._connect(ray)
        try:
            self._check_resources(ray)
            self._run(ray, fn, tasks, on_done, progress)
        finally:
            if started_here:
                ray.shutdown()

    def _connect(self, ray) -> None:
        try:
            ray.init(address=self.address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(
                f"address={self.address!r}: cannot connect to a Ray cluster ({reason}); start "
                "one with `ray start --head`, and where the cluster uses token authentication "
                "set RAY_AUTH_MODE=token here with the cluster's token in RAY_AUTH_TOKEN or "
                "~/.ray/auth_token (`ray get-auth-token` prints it on the head)"
            ) from None

    def _check_resources(self, ray) -> None:
        have = ray.cluster_resources()
        for key, need in (("CPU", self.threads), ("GPU", self.gpus)):
            if need and have.get(key, 0) < need:
                raise ConfigError(
                    f"{key.lower()}s_per_task={need} is more than the Ray cluster has "
                    f"({have.get(key, 0):g} {key}s); accepted: at most that"
                )

    def _run(self, ray, fn, tasks, on_done, progress) -> None:
        counter = ray.remote(num_cpus=0)(_StepCounter).remote()
        # SPREAD: independent tasks go to every node at once; Ray's default packs one node
        # first, and long tasks then wait for each other on the head
        remote = ray.remote(_run_task).options(
            num_cpus=self.threads,
            num_gpus=self.gpus,
            max_retries=self.max_retries,
            scheduling_strategy="SPREAD",
        )
        refs = {remote.remote(fn, task, counter, self.threads): task for task in tasks}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
                progress(ray.get(counter.take.remote()))
                for ref in ready:
                    on_done(refs[ref], _result(ray, ref))
            progress(ray.get(counter.take.remote()))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            ray.kill(counter)


def _result(ray, ref) -> Any:
    """A task's value; a task's own error is raised as itself (one line for the CLI)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, Exception):
            raise err.cause from None
        raise


class _StepCounter:
    """A Ray actor adding up the steps tasks report."""

    def __init__(self) -> None:
        self.steps = 0

    def add(self, n: int) -> None:
        self.steps += n

    def take(self) -> int:
        steps, self.steps = self.steps, 0
        return steps


def _run_task(fn: TaskFn, task, counter, threads: int) -> Any:
    """What a Ray worker runs: ``fn`` with ``threads`` torch threads, reporting steps to the
    counter actor."""
    import torch

    torch.set_num_threads(threads)
    return fn(task, counter.add.remote)
