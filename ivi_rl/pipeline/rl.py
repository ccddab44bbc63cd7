"""Run an RL benchmark from a TOML config: ``run_rl("experiments/deep_sea.toml")`` (the
Python twin of ``ivi-rl rl CONFIG``); the config format is in :mod:`ivi_rl.pipeline.rl_config`."""

from __future__ import annotations

from pathlib import Path

from .pipeline import run_pipeline
from .rl_config import RLConfig, load_rl_config
from .rl_runner import RLRunner

__all__ = ["run_rl"]


def run_rl(
    config: str | Path | RLConfig,
    *,
    out=None,
    seeds: int | None = None,
    device: str | None = None,
    workers: int | None = None,
    executor: str | None = None,
    address: str | None = None,
    sets: list[str] | None = None,
    quiet: bool = False,
    fail_fast: bool = False,
) -> list[dict]:
    """Validate, run unfinished (env, agent, seed) runs and write the report; returns the
    summary rows. ``executor`` (in_process, local, ray) and ``address`` (a Ray cluster's)
    override the config's; ``sets`` are ``KEY=VALUE`` overrides of any config key
    (:func:`ivi_rl.pipeline.configs.apply_sets`)."""
    if not isinstance(config, RLConfig):
        config = load_rl_config(
            config,
            out=None if out is None else str(out),
            seeds=seeds,
            device=device,
            workers=workers,
            executor_kind=executor,
            executor_address=address,
            sets=sets,
        )
    return run_pipeline(RLRunner, config, quiet, fail_fast=fail_fast)
