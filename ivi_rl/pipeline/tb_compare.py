"""TensorBoard's comparison view, shared by both reports.

Each (group, agent) gets a mean run, ``tb/<group>/<agent>/mean``, holding the mean over seeds
of its curves and, under ``compare/<group>/<quantity>`` (only mean runs carry these tags, so
per-seed runs stay out of the way), the mean with a band of one standard error. A
custom-scalars layout makes the first view one margin chart per group and quantity, one line
per agent; hparams (the agent's settings and its final numbers) make the HParams table list,
filter and sort the agents.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

__all__ = ["COMPARE", "MeanRun", "compare_tags", "layout", "mean_and_se", "write_mean_run"]

COMPARE = "compare"


def compare_tags(group: str, quantity: str) -> tuple[str, str, str]:
    """Tags of a comparison chart: mean, mean - s.e., mean + s.e."""
    base = f"{COMPARE}/{group}/{quantity}"
    return base, f"{base}/lower", f"{base}/upper"


def layout(title: str, charts: Iterable[tuple[str, str, str]]) -> dict:
    """The custom-scalars layout: one category ``compare: <title>`` with a margin chart per
    (chart title, group, quantity)."""
    return {
        f"{COMPARE}: {title}": {
            name: ["Margin", list(compare_tags(group, quantity))]
            for name, group, quantity in charts
        }
    }


def mean_and_se(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds (rows) and its standard error (0 for one seed)."""
    mean = curves.mean(0)
    if len(curves) < 2:
        return mean, np.zeros_like(mean)
    return mean, curves.std(0, ddof=1) / np.sqrt(len(curves))


@dataclasses.dataclass(frozen=True)
class MeanRun:
    """What one mean run holds: ``steps``; per tag the seeds' curves (seeds x steps), of which
    the ``banded`` quantities also go to the comparison chart of ``group``; hparams; a note
    shown as text."""

    group: str
    steps: np.ndarray
    curves: Mapping[str, np.ndarray]
    banded: Mapping[str, str]
    params: dict
    metrics: dict[str, float]
    note: str = ""
    """Text shown with the run (e.g. which seeds diverged and are left out of the mean)."""


def write_mean_run(path: Path, run: MeanRun, custom_layout: dict | None = None) -> None:
    """Write (replace) the mean run at ``path``; ``custom_layout`` is written with it (the
    layout is read from any run, so once per output folder is enough)."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    shutil.rmtree(path, ignore_errors=True)
    with SummaryWriter(str(path)) as writer:
        for tag, curves in run.curves.items():
            mean, se = mean_and_se(np.asarray(curves, dtype=float))
            quantity = run.banded.get(tag)
            tags = compare_tags(run.group, quantity) if quantity is not None else ()
            for i, step in enumerate(run.steps):
                writer.add_scalar(tag, float(mean[i]), int(step))
                if tags:
                    band = (mean[i], mean[i] - se[i], mean[i] + se[i])
                    for band_tag, value in zip(tags, band, strict=True):
                        writer.add_scalar(band_tag, float(value), int(step))
        params = {
            k: v if isinstance(v, bool | int | float | str) else str(v)
            for k, v in run.params.items()
        }
        for summary in hparams(params, run.metrics):
            writer.file_writer.add_summary(summary)
        for tag, value in run.metrics.items():
            writer.add_scalar(tag, value, 0)
        if run.note:
            writer.add_text("left_out", run.note)
        if custom_layout is not None:
            writer.add_custom_scalars(custom_layout)
