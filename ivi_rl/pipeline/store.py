"""What a task hands back and how the driver stores it.

A task computes in whatever process or machine runs it and returns a :class:`TaskOutput`:
its files as bytes, by path relative to the output folder. The driver alone writes them
(:func:`store`), atomically, result files last: a result file is the resume key, so a run
whose result exists has all its files. Both runners lay out a run the same way
(:func:`run_paths`).
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .atomic import read_existing_npz, write_bytes

__all__ = [
    "TaskOutput",
    "figure_bytes",
    "folder_files",
    "in_scratch",
    "load_runs",
    "run_paths",
    "store",
]


@dataclasses.dataclass(frozen=True)
class TaskOutput:
    """``files``: relative path -> content, written in order (result files last);
    ``clear``: relative folders removed first (a redone run's old TensorBoard events)."""

    files: dict[str, bytes]
    clear: tuple[str, ...] = ()


def in_scratch(
    run: Callable[[Any, Callable[[int], None], Path], TaskOutput],
    task: Any,
    progress: Callable[[int], None],
    where: str,
) -> TaskOutput:
    """``run(task, progress, scratch)`` with a scratch folder for the files it collects
    (removed afterwards); a diverged run's ``FloatingPointError`` is prefixed with
    ``where`` (the task's group, agent and seeds) so its one line says which run it was."""
    with tempfile.TemporaryDirectory(prefix="ivi_rl_task_") as scratch:
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
    """The stored results of every (group, agent): the arrays of each finished seed, in order."""
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
