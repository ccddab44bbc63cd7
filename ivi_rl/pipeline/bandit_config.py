"""Bandit experiment configs: TOML in, validated dataclasses out.

    base = "showdown_cpu.toml" # optional: start from that config (see configs.read_config)
    horizon = 2000            # optional: default each dataset's Showdown n
    seeds = 5                 # a count (seeds 0..4) or a list
    device = "cpu"
    out = "runs/default"
    workers = 2               # local pool processes (default: CPU count)
    executor = "local"        # or "in_process", "ray", or a table: see configs.executor_spec
    vectorize = true          # run the seeds of one (dataset, agent) as one batch
    log_points = 100          # TensorBoard points per run

    [defaults.agents]         # settings of every agent unless it sets its own
    [defaults.ivi_ts]         # settings of every agent named ivi_ts

    [[datasets]]
    name = "wheel"            # a dataset of envs.DATASETS
    label = "wheel_0.9"       # optional; must be unique
    delta = 0.9               # dataset settings
    horizon = 5000            # optional per-dataset horizon

    [[agents]]
    name = "ivi_ts"           # an agent of agents.bandits.AGENTS
    lr = 0.005                # agent settings

Validation builds every dataset and one instance of every agent before any run starts, so an
unknown name, a bad setting, a missing data file or a bad horizon fails at once with one
message naming the place in the config.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ivi_rl import envs
from ivi_rl.agents.bandits import agent_classes, make_agent
from ivi_rl.checks import resolve_device

from .configs import (
    AgentSpec,
    ConfigError,
    check_defaults,
    check_known_keys,
    check_label,
    check_unique_labels,
    executor_spec,
    load_toml_config,
    out_folder,
    pop_why,
    positive,
    seeds,
    typed,
    with_defaults,
)
from .executors import ExecutorSpec

__all__ = ["AgentSpec", "BanditConfig", "ConfigError", "DatasetSpec", "load_config"]

TOP_LEVEL = {
    "horizon",
    "seeds",
    "device",
    "out",
    "workers",
    "executor",
    "vectorize",
    "log_points",
    "datasets",
    "agents",
    "data_dir",
    "defaults",
}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    label: str
    name: str
    settings: dict[str, Any]
    horizon: int | None = None


@dataclasses.dataclass(frozen=True)
class BanditConfig:
    datasets: list[DatasetSpec]
    agents: list[AgentSpec]
    seeds: list[int]
    out: Path
    horizon: int | None = None
    device: str = "cpu"
    executor: ExecutorSpec = dataclasses.field(default_factory=ExecutorSpec)
    vectorize: bool = True
    log_points: int = 100
    data_dir: str | None = None

    def horizon_of(self, dataset: DatasetSpec, default: int) -> int:
        return self.horizon or dataset.horizon or default


def load_config(path: str | Path, **overrides: Any) -> BanditConfig:
    """Read, override (``seeds``, ``horizon``, ``device``, ``out``, ``data_dir``, ...) and
    validate a config. Raises :class:`ConfigError` before anything runs."""
    return load_toml_config(path, _parse, _validate, overrides)


def _parse(raw: dict[str, Any], overrides: dict[str, Any]) -> BanditConfig:
    if "envs" in raw and "datasets" not in raw:
        raise ConfigError("this is an RL config ([[envs]]); run it with `ivi-rl rl`")
    check_known_keys(raw, TOP_LEVEL)
    raw = {**raw, **overrides}
    check_defaults(raw, {"datasets", "agents", *envs.DATASETS, *agent_classes()})
    datasets = [_dataset(i, d) for i, d in enumerate(with_defaults(raw, "datasets"))]
    agents = [_agent(i, a) for i, a in enumerate(with_defaults(raw, "agents"))]
    check_unique_labels("datasets", [s.label for s in datasets])
    check_unique_labels("agents", [s.label for s in agents])
    return BanditConfig(
        datasets=datasets,
        agents=agents,
        seeds=seeds(raw.get("seeds", 5)),
        out=out_folder(raw, "runs/bandit"),
        horizon=positive(raw.get("horizon"), "horizon"),
        device=typed(raw, "device", str, "cpu"),
        executor=executor_spec(raw),
        vectorize=typed(raw, "vectorize", bool, True),
        log_points=positive(raw.get("log_points", 100), "log_points"),
        data_dir=raw.get("data_dir"),
    )


def _named(i: int, kind: str, table: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    table = dict(table)
    name = table.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(f"{kind}[{i}] needs a string 'name'")
    label = check_label(f"{kind}[{i}]", table.pop("label", name))
    return name, label, table


def _dataset(i: int, table: dict[str, Any]) -> DatasetSpec:
    name, label, settings = _named(i, "datasets", table)
    horizon = positive(settings.pop("horizon", None), f"datasets[{i}].horizon")
    return DatasetSpec(label, name, settings, horizon)


def _agent(i: int, table: dict[str, Any]) -> AgentSpec:
    name, label, settings = _named(i, "agents", table)
    why = pop_why(f"agents[{i}]", settings)
    return AgentSpec(label, name, settings, why=why)


def _check_memory(where: str, config: BanditConfig, horizon: int, problem) -> None:
    """Refuse a run whose trial arrays cannot fit in memory before any of it starts: a task
    holds its seeds' contexts and rewards (float32), expected rewards (float64) and the
    agent's buffer (float32 contexts)."""
    group = len(config.seeds) if config.vectorize else 1
    tasks = len(config.agents) * len(config.seeds) // group
    concurrent = min(config.executor.workers or os.cpu_count() or 1, tasks)
    d, k = problem.context_dim, problem.num_actions
    need = concurrent * group * horizon * (8 * d + 12 * k + 16)
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have / 2:
        raise ConfigError(
            f"{where}: horizon {horizon:,} x {len(config.seeds):,} seeds needs about "
            f"{need / 2**30:.1f} GiB for the trials' arrays; this machine has "
            f"{have / 2**30:.1f} GiB (at most half is used): lower horizon or seeds, or set "
            "vectorize = false"
        )


def _validate(config: BanditConfig) -> None:
    try:
        resolve_device(config.device)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None
    shapes = {}
    for i, spec in enumerate(config.datasets):
        problem = _build(
            f"datasets[{i}] ({spec.label})",
            envs.make_problem,
            spec.name,
            data_dir=config.data_dir,
            **spec.settings,
        )
        horizon = config.horizon_of(spec, problem.default_horizon)
        _build(
            f"datasets[{i}] ({spec.label})",
            envs.problems.check_horizon,
            horizon,
            problem.max_horizon,
        )
        shapes[spec.label] = (problem.num_actions, problem.context_dim)
        _check_memory(f"datasets[{i}] ({spec.label})", config, horizon, problem)
    k, d = next(iter(shapes.values()))
    for i, spec in enumerate(config.agents):
        _build(
            f"agents[{i}] ({spec.label})",
            make_agent,
            spec.name,
            k,
            d,
            [0],
            2,
            device=config.device,
            **spec.settings,
        )


def _build(where: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise ConfigError(f"{where}: {err}") from None
