"""Run a bandit benchmark from a TOML config: ``run_bandit("experiments/default.toml")``
(the Python twin of ``ivi-rl bandit CONFIG``)."""

from __future__ import annotations

from pathlib import Path

from .bandit_config import BanditConfig, load_config
from .bandit_runner import BanditRunner
from .pipeline import run_pipeline

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
    executor: str | None = None,
    address: str | None = None,
    sets: list[str] | None = None,
    quiet: bool = False,
    fail_fast: bool = False,
) -> list[dict]:
    """Validate, run what is not finished yet, and write the report; returns the summary rows.

    Rerunning into the same ``out`` skips finished runs (resume). ``executor`` (in_process,
    local, ray) and ``address`` (a Ray cluster's) override the config's; ``sets`` are
    ``KEY=VALUE`` overrides of any config key (:func:`ivi_rl.pipeline.configs.apply_sets`).
    ``quiet`` (or the ``CI`` environment variable) silences the progress bar. A trial whose
    training stops is recorded and reported, and :class:`~ivi_rl.pipeline.DivergedTrials`
    (with the rows) is raised after the report is written; ``fail_fast`` stops at the first.
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
            executor_kind=executor,
            executor_address=address,
            sets=sets,
        )
    return run_pipeline(BanditRunner, config, quiet, fail_fast=fail_fast)
