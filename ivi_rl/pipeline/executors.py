"""Where a pipeline's tasks run: in this process, in a local process pool, or on a Ray cluster.

Every executor has one contract, :meth:`Executor.run`: call ``fn(task, progress)`` for every
task (``fn`` a module-level function, so it can travel to another process or machine), hand
each task's return value to ``on_done(task, value)`` in the calling process as it arrives,
and forward the step counts tasks report to ``progress``. Tasks only compute; the caller
alone writes files, so no executor needs a filesystem shared with the caller.

A task runs with ``threads`` torch threads (1 by default, on every executor), so a seed gives
the same numbers whichever executor runs it. An error in a task, or Ctrl-C, stops the run:
tasks not started are cancelled, and results already handed to ``on_done`` are kept.
"""

from __future__ import annotations

import abc
import dataclasses
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from enum import StrEnum
from queue import Empty
from typing import Any

import torch

__all__ = [
    "Executor",
    "ExecutorKind",
    "ExecutorSpec",
    "InProcess",
    "LocalPool",
]

TaskFn = Callable[[Any, Callable[[int], None]], Any]
OnDone = Callable[[Any, Any], None]


class ExecutorKind(StrEnum):
    IN_PROCESS = "in_process"
    LOCAL = "local"
    RAY = "ray"


@dataclasses.dataclass(frozen=True)
class ExecutorSpec:
    """How a config's tasks run: ``kind``; ``workers`` (local pool size, default: CPU
    count); ``address`` of a Ray cluster (None or "auto": the one this machine belongs to,
    else a new one on this machine); resources per Ray task; retries of a Ray task whose
    worker died."""

    kind: ExecutorKind = ExecutorKind.LOCAL
    workers: int | None = None
    address: str | None = None
    cpus_per_task: int = 1
    gpus_per_task: float = 0.0
    max_retries: int = 3


class Executor(abc.ABC):
    """Runs tasks; see the module docstring for the contract."""

    threads: int = 1

    def check(self) -> None:  # noqa: B027 - optional hook
        """What must hold before anything runs (e.g. a cluster that answers), checked by the
        pipeline before it writes to the output folder; ``ConfigError`` if it does not."""

    @abc.abstractmethod
    def run(
        self, fn: TaskFn, tasks: Sequence, on_done: OnDone, progress: Callable[[int], None]
    ) -> None: ...


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads, restoring the caller's count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class InProcess(Executor):
    """One task after another in this process (debuggers and profilers see everything)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def run(self, fn, tasks, on_done, progress) -> None:
        with torch_threads(self.threads):
            for task in tasks:
                on_done(task, fn(task, progress))


class LocalPool(Executor):
    """Spawned worker processes on this machine; with one worker or one task, in process.
    Workers exit when the process that started them is gone (even after SIGTERM)."""

    def __init__(self, workers: int | None = None, threads: int = 1) -> None:
        self.workers, self.threads = workers, threads

    def run(self, fn, tasks, on_done, progress) -> None:
        workers = max(1, min(len(tasks), self.workers or os.cpu_count() or 1))
        if workers == 1:
            InProcess(self.threads).run(fn, tasks, on_done, progress)
            return
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        init = (os.getpid(), queue, self.threads)
        with ProcessPoolExecutor(workers, ctx, initializer=_init_worker, initargs=init) as pool:
            futures = {pool.submit(_in_worker, fn, task): task for task in tasks}
            pending = set(futures)
            try:
                while pending:
                    finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    _drain(queue, progress)
                    for future in finished:
                        on_done(futures[future], future.result())  # re-raises a task's error
            except BaseException:
                for future in pending:  # a failed task stops the run: start nothing new
                    future.cancel()
                raise
        _drain(queue, progress)


_progress_queue = None  # a pool worker's queue for step counts, set by _init_worker


def _init_worker(parent: int, queue, threads: int, poll_s: float = 1.0) -> None:
    """Pool worker initializer: keep the progress queue (a multiprocessing queue can only be
    handed over at process start), set the thread count, and exit when the process that
    started us is gone (a runner killed by SIGTERM would otherwise leave workers computing
    results nobody will store)."""
    global _progress_queue
    _progress_queue = queue
    torch.set_num_threads(threads)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _in_worker(fn: TaskFn, task) -> Any:
    return fn(task, _progress_queue.put)


def _drain(queue, progress: Callable[[int], None]) -> None:
    while True:
        try:
            progress(queue.get_nowait())
        except Empty:
            return
