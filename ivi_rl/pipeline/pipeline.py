"""One pipeline for both runners: plan -> execute -> store -> report.

A :class:`Runner` says only what differs between the bandit and the RL benchmark: which tasks
a config still needs (each task's results carry a fingerprint of every setting that changes
them, so finished tasks are skipped), how one task runs (a module-level function returning a
:class:`~ivi_rl.pipeline.store.TaskOutput`), how many steps it counts, and the report.
:func:`run_pipeline` does the rest the same way for both: one run per output folder (a lock),
tasks on the config's executor, each result stored by this process as it arrives, a progress
bar over all steps, the report, a warning naming run folders the config no longer has, and a
closing line.

A trial whose training stopped is a result, not a crash: the other tasks run to the end, the
report shows it, and :class:`DivergedTrials` is raised after everything is written (the
command line's exit status 1, naming the trials). ``fail_fast`` stops the run at the first
one instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from .executors import Executor, ExecutorKind, ExecutorSpec, InProcess, LocalPool
from .lock import output_lock
from .store import Divergence, TaskOutput, store

__all__ = [
    "DivergedTrials",
    "Runner",
    "is_silent",
    "make_executor",
    "run_pipeline",
    "stale_runs",
    "tensorboard_command",
]


class DivergedTrials(FloatingPointError):
    """Some trials' training stopped; everything else ran and the report is written.

    Attributes:
        divergences: the diverged trials (group, agent, seed, step, message).
        rows: the report's summary rows, as :func:`run_pipeline` returns them otherwise."""

    def __init__(self, divergences: list[Divergence], rows: list[dict], out: Path) -> None:
        cells: dict[tuple[str, str], list[int]] = {}
        for d in divergences:
            cells.setdefault((d.group, d.agent), []).append(d.seed)
        named = "; ".join(f"{g}/{a} seed(s) {sorted(s)}" for (g, a), s in cells.items())
        super().__init__(
            f"{len(divergences)} trial(s) diverged: {named}; {out}/summary.md lists their "
            "errors and leaves them out of the means; the same command runs them again"
        )
        self.divergences, self.rows = divergences, rows


class Runner(Protocol):
    """What a benchmark adds to the pipeline."""

    name: str  # the progress bar's label
    run_task: Callable[[Any, Callable[[int], None]], TaskOutput]  # a module-level function

    def plan(self, config: Any) -> list: ...

    def steps(self, task: Any) -> int: ...

    def report(self, config: Any) -> list[dict]: ...

    def labels(self, config: Any) -> tuple[list[str], list[str]]: ...

    def closing(self, config: Any) -> str: ...


def run_pipeline(
    runner: Runner,
    config: Any,
    quiet: bool = False,
    executor: Executor | None = None,
    fail_fast: bool = False,
) -> list[dict]:
    """Run ``config``'s unfinished tasks on ``executor`` (default: the one ``config.executor``
    names), store their outputs under ``config.out`` and write the report; returns its rows,
    or raises :class:`DivergedTrials` after writing it when a trial diverged. ``fail_fast``:
    the first diverged trial stops the run (``FloatingPointError`` naming it)."""
    spec: ExecutorSpec = config.executor
    executor = executor or make_executor(spec)
    executor.check()
    silent = is_silent(quiet)
    diverged: list[Divergence] = []

    def on_done(_, output: TaskOutput) -> None:
        store(config.out, output)
        diverged.extend(output.diverged)
        if fail_fast and output.diverged:
            raise FloatingPointError(str(output.diverged[0]))

    with output_lock(config.out):
        tasks = runner.plan(config)
        total = sum(runner.steps(t) for t in tasks)
        with tqdm(
            total=total, unit="step", desc=runner.name, disable=silent, smoothing=0.05
        ) as bar:
            executor.run(runner.run_task, tasks, on_done, bar.update)
        rows = runner.report(config)
        stale = stale_runs(config.out, *runner.labels(config))
    if stale:  # a warning, shown in quiet mode too
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        print(
            f"ivi-rl: warning: {len(stale)} run folder(s) in {config.out} are not in this config "
            f"(renamed or removed agents, datasets or envs): {shown}; TensorBoard still shows "
            "them, delete them to hide them",
            file=sys.stderr,
        )
    if not silent:
        print(runner.closing(config))
    if diverged:
        raise DivergedTrials(diverged, rows, config.out)
    return rows


def make_executor(spec: ExecutorSpec) -> Executor:
    """The executor a spec names (Ray is imported only when asked for)."""
    if spec.kind == ExecutorKind.IN_PROCESS:
        return InProcess()
    if spec.kind == ExecutorKind.LOCAL:
        return LocalPool(spec.workers)
    from .ray_executor import RayExecutor

    return RayExecutor(
        spec.address, spec.cpus_per_task, spec.gpus_per_task, max_retries=spec.max_retries
    )


def stale_runs(out: Path, groups: list[str], agents: list[str]) -> list[str]:
    """Folders ``tb/<group>/<agent>`` and ``results/<group>/<agent>`` under ``out`` whose
    group or agent the config does not have (left by an earlier version of the config)."""
    found = []
    for kind in ("tb", "results"):
        for folder in sorted(Path(out, kind).glob("*/*")):
            group, agent = folder.parent.name, folder.name
            if folder.is_dir() and (group not in groups or agent not in agents):
                found.append(f"{kind}/{group}/{agent}")
    return found


def is_silent(quiet: bool) -> bool:
    """Progress bars and closing messages are off under ``quiet`` or in CI (``$CI`` set)."""
    return quiet or bool(os.environ.get("CI"))


def tensorboard_command() -> str:
    """How to start TensorBoard from this Python: its script next to the interpreter (a venv's
    bin/, not on PATH outside it) when present, else ``python -m tensorboard.main``."""
    script = Path(sys.executable).parent / "tensorboard"
    return str(script) if script.exists() else f"{sys.executable} -m tensorboard.main"
