"""RL benchmark configs: TOML in, validated dataclasses out; the agents and envs they name.

base = "deep_sea.toml"      # optional: start from that config (see configs.read_config)
seeds = 3
out = "runs/deep_sea"
stop_when_solved = true     # Deep Sea: stop a run at its solve episode (saves compute)
workers = 2                 # local pool processes (default: CPU count)
executor = "local"          # or "in_process", "ray", or a table: configs.executor_spec
select_agents = ["ivi_dqn"] # optional: run only these agents (labels)

[defaults.agents]           # settings of every agent unless it sets its own
buffer_size = 10000
[defaults.dqn]              # settings of every agent named dqn
exploration_fraction = 0.1

[[envs]]
id = "ivi_rl/DeepSea-v0"
label = "deep_sea"
episodes = 10000            # or: timesteps = 50000
eval_episodes = 0           # > 0: evaluate the final greedy policy (posterior mean for IVI)
eval_every = 0              # > 0: also every this many steps (needs eval_episodes)
sweep = { size = [10, 12] } # one variant per value, labelled deep_sea_10, deep_sea_12

[[agents]]
name = "ivi_dqn"            # ivi_dqn, bootstrapped_dqn, noisy_dqn, dqn
learning_rate = 0.001       # algorithm keyword arguments; "lin_0.02": the RL Zoo's linear
                            # decay from 0.02 to 0 over the run (learning_rate_schedule)
policy_kwargs = { net_arch = [50, 50] }  # classes by name: optimizer_class = "sgd",
                                         # activation_fn = "tanh"
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from ivi_rl import envs
from ivi_rl.agents import IVIDQN, BootstrappedDQN, NoisyDQN
from ivi_rl.checks import check_choice, resolve_device
from ivi_rl.contrib.sb3 import RL_VARIANTS

from .configs import (
    AgentSpec,
    ConfigError,
    check_defaults,
    check_known_keys,
    check_label,
    check_unique_labels,
    choice,
    default_label,
    executor_spec,
    layer_settings,
    load_toml_config,
    out_folder,
    pop_why,
    positive,
    seeds,
    select_by_label,
    tables,
    typed,
    with_defaults,
)
from .executors import ExecutorSpec

__all__ = [
    "ALGORITHMS",
    "OPTIMIZERS",
    "EnvSpec",
    "RLConfig",
    "RLTask",
    "agent_on",
    "build_agent",
    "known_optimal_return",
    "learning_rate_schedule",
    "load_rl_config",
    "make_env",
]

ALGORITHMS = {
    "ivi_dqn": IVIDQN,
    "bootstrapped_dqn": BootstrappedDQN,
    "noisy_dqn": NoisyDQN,
    "dqn": DQN,
    **RL_VARIANTS,
}
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
"""Optimizers a TOML config names in ``policy_kwargs.optimizer_class`` (those with a muP rule)."""
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU, "elu": nn.ELU}
"""Activations a TOML config names in ``policy_kwargs.activation_fn``."""
CLASS_SETTINGS = {"optimizer_class": OPTIMIZERS, "activation_fn": ACTIVATIONS}
"""``policy_kwargs`` whose values are classes, named in TOML by these keys."""
TOP_LEVEL = {
    "seeds",
    "out",
    "device",
    "workers",
    "executor",
    "stop_when_solved",
    "envs",
    "agents",
    "defaults",
    "select_agents",
}


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    label: str
    id: str
    kwargs: dict[str, Any]
    episodes: int | None
    timesteps: int | None
    eval_episodes: int = 0
    eval_every: int = 0
    agent_defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    """``[defaults."<env id>"]``: settings of every agent on this env (per algorithm name, a
    sub-table); above the other defaults, below an agent's own keys (e.g. the RL Zoo's tuned
    values per env)."""


@dataclasses.dataclass(frozen=True)
class RLConfig:
    envs: list[EnvSpec]
    agents: list[AgentSpec]
    seeds: list[int]
    out: Path
    device: str = "cpu"
    executor: ExecutorSpec = dataclasses.field(default_factory=ExecutorSpec)
    stop_when_solved: bool = True
    unselected: tuple[AgentSpec, ...] = ()
    """The config's agents that ``select_agents`` leaves out: they do not run, their run
    folders are the config's own (not stale), and the report includes their stored results."""


@dataclasses.dataclass(frozen=True)
class RLTask:
    env: EnvSpec
    agent: AgentSpec
    seed: int
    config: RLConfig


def load_rl_config(path: str | Path, **overrides: Any) -> RLConfig:
    """Read, override (``seeds``, ``out``, ``device``, ``workers``, ``executor_kind``,
    ``executor_address``, ``sets``) and validate an RL config. Raises :class:`ConfigError`
    before anything runs."""
    return load_toml_config(path, _parse, _validate, overrides)


def _parse(raw: dict[str, Any], overrides: dict[str, Any]) -> RLConfig:
    if "datasets" in raw and "envs" not in raw:
        raise ConfigError("this is a bandit config ([[datasets]]); run it with `ivi-rl bandit`")
    check_known_keys(raw, TOP_LEVEL)
    raw = {**raw, **overrides}
    check_defaults(raw, {"envs", "agents", *ALGORITHMS, *gym.registry})
    defaults = raw.get("defaults", {})
    env_specs = [
        v for i, t in enumerate(with_defaults(raw, "envs")) for v in _env_variants(i, t, defaults)
    ]
    own = tables(raw, "agents")
    merged = with_defaults(raw, "agents")
    every_agent = [_agent(i, t, own[i]) for i, t in enumerate(merged)]
    agents = select_by_label(every_agent, raw.get("select_agents"), "select_agents")
    check_unique_labels("envs", [e.label for e in env_specs])
    check_unique_labels("agents", [a.label for a in every_agent])
    return RLConfig(
        envs=env_specs,
        agents=agents,
        seeds=seeds(raw.get("seeds", 3)),
        out=out_folder(raw, "runs/rl"),
        device=typed(raw, "device", str, "cpu"),
        executor=executor_spec(raw),
        stop_when_solved=typed(raw, "stop_when_solved", bool, True),
        unselected=tuple(a for a in every_agent if a not in agents),
    )


def _env_variants(i: int, table: dict[str, Any], defaults: dict[str, Any]) -> list[EnvSpec]:
    table = dict(table)
    env_id = table.pop("id", None)
    if not isinstance(env_id, str):
        raise ConfigError(f"envs[{i}] needs a string 'id' (a gymnasium id)")
    label = check_label(f"envs[{i}]", table.pop("label", default_label({"id": env_id})))
    episodes = positive(table.pop("episodes", None), f"envs[{i}].episodes")
    timesteps = positive(table.pop("timesteps", None), f"envs[{i}].timesteps")
    agent_defaults = _env_agent_defaults(env_id, defaults.get(env_id, {}))
    n_eval, every = (
        positive(table.pop(k, None), f"envs[{i}].{k}") or 0 for k in ("eval_episodes", "eval_every")
    )
    if every and not n_eval:
        raise ConfigError(f"envs[{i}] ({label}): eval_every needs eval_episodes > 0")
    if (episodes is None) == (timesteps is None):
        raise ConfigError(
            f"envs[{i}] ({label}) needs exactly one budget: 'episodes' or 'timesteps'"
        )
    sweep = table.pop("sweep", {})
    if (
        not isinstance(sweep, dict)
        or len(sweep) > 1
        or not all(isinstance(v, list) and v for v in sweep.values())
    ):
        raise ConfigError(f"envs[{i}] ({label}) sweep must be one key with a non-empty list")
    if not sweep:
        return [EnvSpec(label, env_id, table, episodes, timesteps, n_eval, every, agent_defaults)]
    ((key, values),) = sweep.items()
    return [
        EnvSpec(
            f"{label}_{v}",
            env_id,
            {**table, key: v},
            episodes,
            timesteps,
            n_eval,
            every,
            agent_defaults,
        )
        for v in values
    ]


def _env_agent_defaults(env_id: str, table: dict[str, Any]) -> dict[str, Any]:
    """``[defaults."<env id>"]``: settings of every agent on that env, and sub-tables named
    after algorithms."""
    if any(
        isinstance(v, dict) and k not in ALGORITHMS and k != "policy_kwargs"
        for k, v in table.items()
    ):
        raise ConfigError(
            f"defaults.{env_id!r} is not accepted; accepted: agent settings and sub-tables "
            f"named {', '.join(ALGORITHMS)}"
        )
    return table


def _agent(i: int, table: dict[str, Any], own: dict[str, Any] | None = None) -> AgentSpec:
    table = dict(table)
    name = choice(f"agents[{i}]: name", table.pop("name", None), ALGORITHMS)
    label = check_label(f"agents[{i}]", table.pop("label", name))
    why = pop_why(f"agents[{i}]", table)
    own = {k: v for k, v in (own or {}).items() if k not in ("name", "label", "why")}
    return AgentSpec(label, name, table, own, why)


def agent_on(agent: AgentSpec, env: EnvSpec) -> AgentSpec:
    """``agent`` with ``env``'s agent settings: they replace the config's defaults, never a
    key the agent's own entry sets; ``policy_kwargs`` key by key, as every layer of
    settings (``configs.layer_settings``)."""
    shared = {k: v for k, v in env.agent_defaults.items() if k not in ALGORITHMS}
    layer = layer_settings(shared, env.agent_defaults.get(agent.name, {}))
    if not layer:
        return agent
    settings = layer_settings(agent.settings, layer, agent.own)
    return dataclasses.replace(agent, settings=settings)


def _validate(config: RLConfig) -> None:
    try:
        resolve_device(config.device)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None
    for spec in config.envs:
        try:
            make_env(spec).close()
        except (gym.error.Error, TypeError, ValueError) as err:
            raise ConfigError(f"env {spec.label} ({spec.id}): {err}") from None
    # every agent on the first env and on one env of each id with its own agent settings
    # (those settings depend on the id alone)
    checked = {config.envs[0].id: config.envs[0]}
    for env in config.envs:
        if env.agent_defaults:
            checked.setdefault(env.id, env)
    for env in checked.values():
        with contextlib.closing(make_env(env)) as built:
            for spec in config.agents:
                where = f"agent {spec.label} ({spec.name})"
                if env.agent_defaults:
                    where += f" on env {env.label}"
                try:
                    build_agent(agent_on(spec, env), built, device=config.device)
                except (TypeError, ValueError, AssertionError) as err:
                    raise ConfigError(f"{where}: {err}") from None


def build_agent(agent: AgentSpec, env: gym.Env, **kwargs: Any):
    """The SB3 algorithm of a config's agent on ``env`` (``kwargs``: seed, device). TOML has
    no classes, so ``policy_kwargs.optimizer_class`` and ``activation_fn`` are names
    (:data:`CLASS_SETTINGS`)."""
    settings = dict(agent.settings)
    policy = dict(settings.get("policy_kwargs", {}))
    for key, classes in CLASS_SETTINGS.items():
        if key in policy:
            policy[key] = classes[check_choice(f"policy_kwargs.{key}", policy[key], classes)]
    if policy:
        settings["policy_kwargs"] = policy
    if "learning_rate" in settings:
        settings["learning_rate"] = learning_rate_schedule(settings["learning_rate"])
    return ALGORITHMS[agent.name]("MlpPolicy", env, **settings, **kwargs)


def learning_rate_schedule(value: Any) -> float | LinearSchedule:
    """A config's ``learning_rate``: a number as it is, or the RL Zoo's ``"lin_X"`` (X > 0), a
    step falling linearly from X at the first update to 0 at the end of ``learn``'s budget."""
    if isinstance(value, str) and value.startswith("lin_"):
        with contextlib.suppress(ValueError):
            start = float(value[4:])
            if math.isfinite(start) and start > 0:
                return LinearSchedule(start, 0.0, 1.0)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise ValueError(
        f"learning_rate={value!r} is not accepted; accepted: a number, or 'lin_X' with a "
        "number X > 0 (linear from X to 0 over the run)"
    )


def known_optimal_return(env: gym.Env) -> float | None:
    """The optimal policy's expected return where the env knows it (Deep Sea), else None."""
    base = env.unwrapped
    return base.optimal_return if isinstance(base, envs.DeepSeaEnv) else None


def env_kwargs(spec: EnvSpec) -> dict[str, Any]:
    """The keyword arguments ``make_env`` builds the env with: its registration's, then the
    config's (an id may name its module first, ``module:Env-v0``, as ``gym.make`` takes it)."""
    module, _, env_id = spec.id.rpartition(":")
    if module:
        importlib.import_module(module)
    return {**gym.spec(env_id).kwargs, **spec.kwargs}


def make_env(spec: EnvSpec) -> gym.Env:
    """The env with Monitor (episode statistics) and flattened 2-D observations (Deep Sea)."""
    env = gym.make(spec.id, **spec.kwargs)
    if isinstance(env.observation_space, gym.spaces.Box) and len(env.observation_space.shape) > 1:
        env = gym.wrappers.FlattenObservation(env)
    return Monitor(env)
