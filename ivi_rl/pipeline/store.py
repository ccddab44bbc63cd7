"""What a task hands back and how the driver stores it.

A task computes in whatever process or machine runs it and returns a :class:`TaskOutput`:
its files as bytes, by path relative to the output folder. The driver alone writes them
(:func:`store`), atomically, result files last: a result file is the resume key, so a run
whose result exists has all its files. Both runners lay out a run the same way
(:func:`run_paths`).

A trial whose training stopped (a non-finite loss, or one above an agent's ``max_loss``) is
a result too: its result file is a *diverged record* (:func:`diverged_record`: the error,
the step, the seed) instead of curves. Reports show it, and a rerun retries it
(:func:`is_finished` is false for it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import npz_bytes, read_existing_npz, write_bytes

__all__ = [
    "CappedProgress",
    "Divergence",
    "TaskOutput",
    "diverged_lines",
    "diverged_record",
    "figure_bytes",
    "folder_files",
    "in_scratch",
    "is_diverged",
    "is_finished",
    "load_runs",
    "remove_orphaned_scratch",
    "run_paths",
    "split_diverged",
    "store",
]


@dataclasses.dataclass(frozen=True)
class Divergence:
    """A trial whose training stopped: where (group, agent, seed), when (step) and why."""

    group: str
    agent: str
    seed: int
    step: int
    message: str

    def __str__(self) -> str:
        return f"{self.group}/{self.agent} seed {self.seed}: {self.message}"


@dataclasses.dataclass(frozen=True)
class TaskOutput:
    """``files``: relative path -> content, written in order (result files last);
    ``clear``: relative folders removed first (a redone run's old TensorBoard events);
    ``diverged``: the task's trials whose training stopped (their records are in ``files``)."""

    files: dict[str, bytes]
    clear: tuple[str, ...] = ()
    diverged: tuple[Divergence, ...] = ()


class CappedProgress:
    """Forwards a task's step counts to ``progress`` up to the task's ``total``; a task that
    runs some steps again (after a trial diverged) never counts past it, and :meth:`finish`
    reports what is left."""

    def __init__(self, progress: Callable[[int], None], total: int) -> None:
        self.progress, self.left = progress, total

    def __call__(self, steps: int) -> None:
        steps = min(steps, self.left)
        if steps > 0:
            self.left -= steps
            self.progress(steps)

    def finish(self) -> None:
        self(self.left)


def diverged_record(fingerprint: str, divergence: Divergence, **extra: np.ndarray) -> bytes:
    """The result file of a diverged trial: its fingerprint, seed, step and message (and
    ``extra`` arrays a report needs, e.g. an RL run's env size)."""
    return npz_bytes(
        fingerprint=np.array(fingerprint),
        diverged=np.array(True),
        seed=np.array(divergence.seed),
        step=np.array(divergence.step),
        message=np.array(divergence.message),
        **extra,
    )


def is_diverged(record: dict[str, np.ndarray]) -> bool:
    """Whether a stored result is a diverged record."""
    return bool(record.get("diverged", False))


def split_diverged(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(finished records, diverged records), each in the order given."""
    return [r for r in records if not is_diverged(r)], [r for r in records if is_diverged(r)]


def diverged_lines(
    runs: dict[tuple[str, str], list[dict]],
    groups: list[str],
    agents: list[str],
    group_name: str,
    title: str,
    note: str,
) -> list[str]:
    """summary.md's list of diverged records, one row per (group, agent, seed) in the order
    given (none: no lines); ``group_name`` heads the first column ('dataset', 'env')."""
    found = [(g, a, r) for g in groups for a in agents for r in split_diverged(runs[g, a])[1]]
    if not found:
        return []
    lines = ["", f"## {title} ({len(found)})", "", note, ""]
    lines += [f"| {group_name} | agent | seed | step | error |", "|---|---|---|---|---|"]
    for g, a, r in found:
        lines.append(f"| {g} | {a} | {int(r['seed'])} | {int(r['step'])} | {r['message']} |")
    return lines


def is_finished(path: Path, fingerprint: str) -> bool:
    """Whether ``path`` holds a finished result made with ``fingerprint`` (a missing,
    unreadable, half-written or stale file, or a diverged record, is not: it is run again)."""
    try:
        with np.load(path) as z:
            return str(z["fingerprint"]) == fingerprint and "diverged" not in z.files
    except (OSError, ValueError, KeyError, EOFError):
        return False


def _host_prefix() -> str:
    """The start of this host's scratch folder names: a digest of the host name, so that
    folders in a temp directory shared between machines are judged by their own host."""
    return f"ivi_rl_task_{hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]}_"


def _scratch_prefix(pid: int) -> str:
    """A task's scratch folder name prefix: this host's, then the task's process id."""
    return f"{_host_prefix()}{pid}_"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_orphaned_scratch(tmp: Path | None = None) -> list[Path]:
    """Remove the scratch folders (:func:`in_scratch`) that processes on this host left behind
    when they were killed before they could clean up (their process no longer exists); the
    folders of live processes and of other hosts stay. Returns the removed folders. Not on
    Windows, where ``os.kill(pid, 0)`` would signal the process instead of probing it."""
    if os.name == "nt":
        return []
    tmp = Path(tmp or tempfile.gettempdir())
    head = _host_prefix()
    removed = []
    for folder in tmp.glob(f"{head}*_*"):
        pid = folder.name[len(head) :].split("_", 1)[0]
        if folder.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def in_scratch(
    run: Callable[[Any, Callable[[int], None], Path], TaskOutput],
    task: Any,
    progress: Callable[[int], None],
    where: str,
) -> TaskOutput:
    """``run(task, progress, scratch)`` with a scratch folder for the files it collects
    (removed afterwards, and by a later task on this machine if the process was killed
    first: :func:`remove_orphaned_scratch`); a diverged run's ``FloatingPointError`` is
    prefixed with ``where`` (the task's group, agent and seeds) so its one line says which
    run it was."""
    remove_orphaned_scratch()
    with tempfile.TemporaryDirectory(prefix=_scratch_prefix(os.getpid())) as scratch:
        try:
            return run(task, progress, Path(scratch))
        except FloatingPointError as err:
            raise FloatingPointError(f"{where}: {err}") from None


def run_paths(group: str, agent: str, seed: int) -> tuple[str, str]:
    """A run's TensorBoard folder and result file, relative to the output folder:
    ``tb/<group>/<agent>/seed_<s>`` and ``results/<group>/<agent>/seed_<s>.npz``."""
    tail = f"{group}/{agent}/seed_{seed}"
    return f"tb/{tail}", f"results/{tail}.npz"


def load_runs(
    out: Path, groups: list[str], agents: list[str], seeds: list[int]
) -> dict[tuple[str, str], list[dict]]:
    """The stored results of every (group, agent): the arrays of each seed that has a result
    file (finished or diverged: :func:`split_diverged`), in seed order."""
    return {
        (g, a): read_existing_npz(Path(out) / run_paths(g, a, s)[1] for s in seeds)
        for g in groups
        for a in agents
    }


def folder_files(folder: Path, under: str) -> dict[str, bytes]:
    """Every file below ``folder``, keyed by its path with ``folder`` replaced by ``under``."""
    folder = Path(folder)
    return {
        f"{under}/{path.relative_to(folder).as_posix()}": path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def store(out: Path, output: TaskOutput) -> None:
    """Write a task's output below ``out`` (see the module docstring)."""
    out = Path(out)
    for folder in output.clear:
        shutil.rmtree(out / folder, ignore_errors=True)
    for rel, data in output.files.items():
        write_bytes(out / rel, data)


def figure_bytes(fig) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
