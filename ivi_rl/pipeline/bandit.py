"""Run a bandit benchmark from a TOML config: ``run_bandit("experiments/default.toml")``
(the Python twin of ``ivi-rl bandit CONFIG``)."""

from __future__ import annotations

from pathlib import Path

from .bandit_config import BanditConfig, load_config
from .bandit_report import report
from .bandit_runner import is_silent, plan, run_with_progress, tensorboard_command
from .lock import output_lock

__all__ = ["run_bandit"]


def run_bandit(
    config: str | Path | BanditConfig,
    *,
    out: str | Path | None = None,
    seeds: int | None = None,
    horizon: int | None = None,
    device: str | None = None,
    data_dir: str | Path | None = None,
    workers: int | None = None,
    vectorize: bool | None = None,
    quiet: bool = False,
) -> list[dict]:
    """Validate, run what is not finished yet, and write the report; returns the summary rows.

    Rerunning into the same ``out`` skips finished runs (resume). ``quiet`` (or the ``CI``
    environment variable) silences the progress bar.
    """
    if not isinstance(config, BanditConfig):
        config = load_config(
            config,
            out=None if out is None else str(out),
            seeds=seeds,
            horizon=horizon,
            device=device,
            data_dir=None if data_dir is None else str(data_dir),
            workers=workers,
            vectorize=vectorize,
        )
    with output_lock(config.out):
        tasks = plan(config)
        total = sum(len(t.seeds) * t.horizon for t in tasks)
        silent = is_silent(quiet)
        run_with_progress(tasks, total, config.workers, "bandit runs", silent)
        rows = report(config)
    if not silent:
        print(
            f"wrote {config.out}/summary.md and {config.out}/regret.png; "
            f"TensorBoard: {tensorboard_command()} --logdir {config.out}/tb"
        )
    return rows
