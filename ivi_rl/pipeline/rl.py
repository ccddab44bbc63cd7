"""RL benchmark runner: SB3 algorithms x environments (with sweeps, e.g. Deep Sea sizes) x seeds.

    seeds = 3
    out = "runs/deep_sea"
    stop_when_solved = true     # Deep Sea: stop a run at its solve episode (saves compute)

    [[envs]]
    id = "ivi_rl/DeepSea-v0"
    label = "deep_sea"
    episodes = 10000            # or: timesteps = 50000
    eval_episodes = 0           # > 0: evaluate the final greedy policy (posterior mean for IVI)
    eval_every = 0              # > 0: also every this many steps (needs eval_episodes)
    sweep = { size = [10, 12] } # one variant per value, labelled deep_sea_10, deep_sea_12

    [[agents]]
    name = "ivi_dqn"            # ivi_dqn, bootstrapped_dqn, noisy_dqn, dqn
    learning_rate = 0.001       # algorithm keyword arguments
    policy_kwargs = { net_arch = [50, 50] }  # optimizer_class = "sgd" or "adam" (by name)

Output: tb/<env>/<agent>/seed_<s> (SB3's logger: episode return, ``regret/cumulative`` where
the optimal return is known, Deep Sea bad episodes and solve episode, posterior spread),
results/<env>/<agent>/seed_<s>.npz (atomic; resume key), summary.csv / summary.md (episodes
to solve, bsuite score, final training returns and, with ``eval_episodes``, the greedy
policy's mean return at the end and its best over the periodic evaluations, logged as SB3's
``eval/mean_reward``: DQN without epsilon, IVIDQN's posterior mean, NoisyDQN's mean weights,
BootstrappedDQN's ensemble mean, as SB3's ``evaluate_policy(deterministic=True)``) and
solve.png (episodes to solve against N, with 2^N).
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor

from ivi_rl import envs
from ivi_rl.agents import IVIDQN, BootstrappedDQN, NoisyDQN
from ivi_rl.checks import resolve_device

from .atomic import (
    fingerprint_of,
    read_existing_npz,
    stored_fingerprint_matches,
    write_bytes,
    write_npz,
    write_text,
)
from .bandit_runner import is_silent, run_with_progress, tensorboard_command
from .configs import (
    AgentSpec,
    ConfigError,
    check_known_keys,
    check_label,
    check_unique_labels,
    load_toml_config,
    out_folder,
    positive,
    seeds,
    tables,
    typed,
)
from .lock import output_lock

__all__ = ["ALGORITHMS", "OPTIMIZERS", "RLConfig", "build_agent", "load_rl_config", "run_rl"]

ALGORITHMS = {
    "ivi_dqn": IVIDQN,
    "bootstrapped_dqn": BootstrappedDQN,
    "noisy_dqn": NoisyDQN,
    "dqn": DQN,
}
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
"""Optimizers a TOML config names in ``policy_kwargs.optimizer_class`` (those with a muP rule)."""
TOP_LEVEL = {"seeds", "out", "device", "workers", "stop_when_solved", "envs", "agents"}


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    label: str
    id: str
    kwargs: dict[str, Any]
    episodes: int | None
    timesteps: int | None
    eval_episodes: int = 0
    eval_every: int = 0


@dataclasses.dataclass(frozen=True)
class RLConfig:
    envs: list[EnvSpec]
    agents: list[AgentSpec]
    seeds: list[int]
    out: Path
    device: str = "cpu"
    workers: int | None = None
    stop_when_solved: bool = True


@dataclasses.dataclass(frozen=True)
class RLTask:
    env: EnvSpec
    agent: AgentSpec
    seed: int
    config: RLConfig


# ------------------------------------------------------------------------------ config
def load_rl_config(path: str | Path, **overrides: Any) -> RLConfig:
    """Read, override (``seeds``, ``out``, ``device``, ``workers``) and validate an RL
    config. Raises :class:`ConfigError` before anything runs."""
    return load_toml_config(path, _parse, _validate, overrides)


def _parse(raw: dict[str, Any], overrides: dict[str, Any]) -> RLConfig:
    check_known_keys(raw, TOP_LEVEL)
    raw = {**raw, **overrides}
    env_specs = [v for i, t in enumerate(tables(raw, "envs")) for v in _env_variants(i, t)]
    agents = [_agent(i, t) for i, t in enumerate(tables(raw, "agents"))]
    check_unique_labels("envs", [e.label for e in env_specs])
    check_unique_labels("agents", [a.label for a in agents])
    return RLConfig(
        envs=env_specs,
        agents=agents,
        seeds=seeds(raw.get("seeds", 3)),
        out=out_folder(raw, "runs/rl"),
        device=typed(raw, "device", str, "cpu"),
        workers=positive(raw.get("workers"), "workers"),
        stop_when_solved=typed(raw, "stop_when_solved", bool, True),
    )


def _env_variants(i: int, table: dict[str, Any]) -> list[EnvSpec]:
    table = dict(table)
    env_id = table.pop("id", None)
    if not isinstance(env_id, str):
        raise ConfigError(f"envs[{i}] needs a string 'id' (a gymnasium id)")
    label = check_label(
        f"envs[{i}]", table.pop("label", env_id.split("/")[-1].split("-")[0].lower())
    )
    episodes = positive(table.pop("episodes", None), f"envs[{i}].episodes")
    timesteps = positive(table.pop("timesteps", None), f"envs[{i}].timesteps")
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
        return [EnvSpec(label, env_id, table, episodes, timesteps, n_eval, every)]
    ((key, values),) = sweep.items()
    return [
        EnvSpec(f"{label}_{v}", env_id, {**table, key: v}, episodes, timesteps, n_eval, every)
        for v in values
    ]


def _agent(i: int, table: dict[str, Any]) -> AgentSpec:
    table = dict(table)
    name = table.pop("name", None)
    if name not in ALGORITHMS:
        raise ConfigError(
            f"agents[{i}]: name={name!r} is not accepted; accepted: {', '.join(ALGORITHMS)}"
        )
    return AgentSpec(check_label(f"agents[{i}]", table.pop("label", name)), name, table)


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
    first = make_env(config.envs[0])
    for spec in config.agents:
        try:
            build_agent(spec, first, device=config.device)
        except (TypeError, ValueError, AssertionError) as err:
            raise ConfigError(f"agent {spec.label} ({spec.name}): {err}") from None


def build_agent(agent: AgentSpec, env: gym.Env, **kwargs: Any):
    """The SB3 algorithm of a config's agent on ``env`` (``kwargs``: seed, device). TOML has
    no classes, so ``policy_kwargs.optimizer_class`` is a name from :data:`OPTIMIZERS`."""
    settings = dict(agent.settings)
    policy = dict(settings.get("policy_kwargs", {}))
    if "optimizer_class" in policy:
        name = policy["optimizer_class"]
        if not isinstance(name, str) or name not in OPTIMIZERS:
            raise ValueError(
                f"policy_kwargs.optimizer_class={name!r} is not accepted; accepted: "
                + ", ".join(OPTIMIZERS)
            )
        settings["policy_kwargs"] = {**policy, "optimizer_class": OPTIMIZERS[name]}
    return ALGORITHMS[agent.name]("MlpPolicy", env, **settings, **kwargs)


def make_env(spec: EnvSpec) -> gym.Env:
    """The env with Monitor (episode statistics) and flattened 2-D observations (Deep Sea)."""
    env = gym.make(spec.id, **spec.kwargs)
    if isinstance(env.observation_space, gym.spaces.Box) and len(env.observation_space.shape) > 1:
        env = gym.wrappers.FlattenObservation(env)
    return Monitor(env)


# ------------------------------------------------------------------------------ running
def _paths(task: RLTask) -> tuple[Path, Path]:
    out = task.config.out
    tail = Path(task.env.label) / task.agent.label
    return out / "tb" / tail / f"seed_{task.seed}", out / "results" / tail / f"seed_{task.seed}.npz"


def _fingerprint(task: RLTask) -> str:
    e, a = task.env, task.agent
    return fingerprint_of(
        e.id,
        e.kwargs,
        e.episodes,
        e.timesteps,
        e.eval_episodes,
        e.eval_every,
        a.name,
        a.settings,
        task.seed,
        task.config.stop_when_solved,
    )


def _finished(task: RLTask) -> bool:
    return stored_fingerprint_matches(_paths(task)[1], _fingerprint(task))


class EpisodeLogger(BaseCallback):
    """Episode returns; where the optimal return is known (Deep Sea) the cumulative regret under
    the bandits' tag, the bad-episode count and the solve episode; progress reporting."""

    def __init__(
        self, optimal: float | None, stop_when_solved: bool, progress: Callable[[int], None]
    ):
        super().__init__()
        self.optimal, self.stop_when_solved, self.progress = optimal, stop_when_solved, progress
        self.returns: list[float] = []
        self.bad: list[bool] = []
        self.regret = 0.0
        self.solved: int | None = None
        self._pending = 0

    def _on_step(self) -> bool:
        self._pending += 1
        if self._pending >= 500:
            self.progress(self._pending)
            self._pending = 0
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done and "episode" in info:
                self._episode(info)
        return not (self.stop_when_solved and self.solved is not None)

    def _episode(self, info: dict) -> None:
        ret = float(info["episode"]["r"])
        self.returns.append(ret)
        self.logger.record("rollout/episode_return", ret)
        if self.optimal is not None:
            self.regret += self.optimal - ret
            self.logger.record("regret/cumulative", self.regret)
        if "bad_episode" in info:
            self.bad.append(bool(info["bad_episode"]))
            self.logger.record("deep_sea/total_bad_episodes", int(sum(self.bad)))
            if self.solved is None:
                self.solved = envs.solve_episode(self.bad)
            if self.solved is not None:
                self.logger.record("deep_sea/solved_episode", self.solved)
        if len(self.returns) % 10 == 0 or self.solved is not None:
            self.logger.dump(self.num_timesteps)


class GreedyEvaluation(BaseCallback):
    """Returns of ``eval_episodes`` episodes of the greedy policy (SB3's ``evaluate_policy``,
    deterministic: DQN without epsilon, IVIDQN's posterior mean) every ``eval_every`` steps
    and at the end, on an env seeded apart from training; its time is kept apart from the
    learning wall time."""

    def __init__(self, task: RLTask):
        super().__init__()
        self.spec = task.env
        self.env = make_env(task.env) if task.env.eval_episodes else None
        if self.env is not None:
            self.env.reset(seed=10_000 + task.seed)  # evaluation episodes differ from training's
        self.steps: list[int] = []
        self.returns: list[list[float]] = []
        self.seconds = 0.0

    def _on_step(self) -> bool:
        every = self.spec.eval_every
        if every and self.num_timesteps % every == 0:
            self.evaluate()
        return True

    def evaluate(self) -> None:
        step = self.model.num_timesteps
        if self.env is None or step in self.steps[-1:]:
            return
        start = time.perf_counter()
        returns, _ = evaluate_policy(
            self.model,
            self.env,
            n_eval_episodes=self.spec.eval_episodes,
            deterministic=True,
            return_episode_rewards=True,
        )
        self.steps.append(step)
        self.returns.append([float(r) for r in returns])
        self.logger.record("eval/mean_reward", float(np.mean(returns)))  # SB3's EvalCallback tag
        self.logger.dump(step)
        self.seconds += time.perf_counter() - start


def execute_rl(task: RLTask, progress: Callable[[int], None] = lambda n: None) -> None:
    tb, result = _paths(task)
    shutil.rmtree(tb, ignore_errors=True)  # a killed run is redone from scratch
    env = make_env(task.env)
    base = env.unwrapped
    optimal = base.optimal_return if isinstance(base, envs.DeepSeaEnv) else None
    model = build_agent(task.agent, env, seed=task.seed, device=task.config.device)
    model.set_logger(configure(str(tb), ["tensorboard"]))
    size = getattr(base, "size", None)
    budget = task.env.timesteps or task.env.episodes * (size or env.spec.max_episode_steps or 1)
    callback = EpisodeLogger(optimal, task.config.stop_when_solved and size is not None, progress)
    evaluation = GreedyEvaluation(task)
    start = time.perf_counter()
    model.learn(
        total_timesteps=budget,
        callback=CallbackList([callback, evaluation]),
        log_interval=10_000_000,
    )
    # wall time of learning only (per-step cost comparable across agents)
    wall_s = time.perf_counter() - start - evaluation.seconds
    evaluation.evaluate()  # the final policy, unless the last periodic evaluation was it
    model.logger.dump(model.num_timesteps)
    returns = np.array(callback.returns)
    write_npz(
        result,
        fingerprint=np.array(_fingerprint(task)),
        returns=returns,
        bad=np.array(callback.bad, dtype=bool),
        solved=np.array(-1 if callback.solved is None else callback.solved),
        size=np.array(-1 if size is None else size),
        seed=np.array(task.seed),
        steps=np.array(model.num_timesteps),
        wall_s=np.array(wall_s),
        eval_steps=np.array(evaluation.steps, dtype=np.int64),
        eval_returns=np.array(evaluation.returns, dtype=float).reshape(
            len(evaluation.steps), task.env.eval_episodes
        ),
    )
    progress(callback._pending)


# ------------------------------------------------------------------------------ report
def _load(config: RLConfig) -> dict[tuple[str, str], list[dict]]:
    return {
        (e.label, a.label): read_existing_npz(
            _paths(RLTask(e, a, s, config))[1] for s in config.seeds
        )
        for e in config.envs
        for a in config.agents
    }


def _rows(config: RLConfig, runs) -> list[dict]:
    rows = []
    for e in config.envs:
        for a in config.agents:
            found = runs[e.label, a.label]
            if not found:
                continue
            solved = [int(r["solved"]) for r in found if int(r["solved"]) > 0]
            size = int(found[0]["size"])
            rows.append(
                {
                    "env": e.label,
                    "agent": a.label,
                    "size": "" if size < 0 else size,
                    "seeds": len(found),
                    "solved": f"{len(solved)}/{len(found)}" if size > 0 else "",
                    "good_episodes": float(np.mean([(~r["bad"]).sum() for r in found]))
                    if size > 0
                    else "",
                    "episodes_to_solve": float(np.median(solved)) if solved else "",
                    "final_return": float(
                        np.mean([r["returns"][-100:].mean() for r in found if r["returns"].size])
                    ),
                    "eval_return": _mean_eval(found),
                    "best_eval_return": _mean_eval(found, best=True),
                    "steps": int(np.mean([r["steps"] for r in found])),
                    "us_per_step": float(
                        1e6 * np.mean([r["wall_s"] / max(int(r["steps"]), 1) for r in found])
                    ),
                }
            )
    return rows


def _mean_eval(found: list[dict], best: bool = False) -> float | str:
    """Mean over seeds of the greedy policy's mean return: the final evaluation's, or the best
    evaluation's with ``best`` ('' without evaluations)."""
    means = [r["eval_returns"].mean(1) for r in found if r.get("eval_returns", np.zeros(0)).size]
    if not means:
        return ""
    return float(np.mean([m.max() if best else m[-1] for m in means]))


def _scores(config: RLConfig, runs) -> dict[str, float]:
    """bsuite Deep Sea score per agent, averaged over seeds (over the sizes in the config)."""
    scores = {}
    for a in config.agents:
        per_seed = []
        for seed in config.seeds:
            sizes = {
                int(r["size"]): int(r["solved"]) if int(r["solved"]) > 0 else None
                for e in config.envs
                for r in runs[e.label, a.label]
                if int(r["seed"]) == seed and int(r["size"]) > 0
            }
            if sizes:
                per_seed.append(envs.deep_sea_score(sizes))
        if per_seed:
            scores[a.label] = float(np.mean(per_seed))
    return scores


def report(config: RLConfig) -> list[dict]:
    runs = _load(config)
    rows = _rows(config, runs)
    cols = [
        "env",
        "agent",
        "size",
        "seeds",
        "solved",
        "episodes_to_solve",
        "good_episodes",
        "final_return",
        "eval_return",
        "best_eval_return",
        "steps",
        "us_per_step",
    ]
    lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows]
    write_text(config.out / "summary.csv", "\n".join(lines) + "\n")
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += [
        "| "
        + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols)
        + " |"
        for r in rows
    ]
    scores = _scores(config, runs)
    if scores:
        md += ["", "| agent | bsuite Deep Sea score |", "|---|---|"] + [
            f"| {a} | {s:.2f} |" for a, s in scores.items()
        ]
    write_text(config.out / "summary.md", "\n".join(md) + "\n")
    if any(r["size"] != "" for r in rows):
        _plot_solve(config, rows)
    return rows


def _plot_solve(config: RLConfig, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = sorted({r["size"] for r in rows if r["size"] != ""})
    ax.plot(sizes, [2.0**n for n in sizes], "k--", label="2^N (dithering)")
    for a in config.agents:
        pts = [
            (r["size"], r["episodes_to_solve"])
            for r in rows
            if r["agent"] == a.label and r["episodes_to_solve"] != ""
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=a.label)
    ax.set(xlabel="Deep Sea size N", ylabel="episodes to solve (median)", yscale="log")
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_bytes(config.out / "solve.png", buffer.getvalue())


def run_rl(
    config: str | Path | RLConfig,
    *,
    out=None,
    seeds: int | None = None,
    device: str | None = None,
    workers: int | None = None,
    quiet: bool = False,
) -> list[dict]:
    """Validate, run unfinished (env, agent, seed) runs and write the report."""
    if not isinstance(config, RLConfig):
        config = load_rl_config(
            config,
            out=None if out is None else str(out),
            seeds=seeds,
            device=device,
            workers=workers,
        )
    with output_lock(config.out):
        tasks = [
            RLTask(e, a, s, config)
            for e in config.envs
            for a in config.agents
            for s in config.seeds
        ]
        tasks = [t for t in tasks if not _finished(t)]
        total = sum(
            t.env.timesteps or t.env.episodes * t.env.kwargs.get("size", 200) for t in tasks
        )
        silent = is_silent(quiet)
        run_with_progress(tasks, total, config.workers, "rl runs", silent, execute_rl)
        rows = report(config)
    if not silent:
        print(
            f"wrote {config.out}/summary.md; TensorBoard: {tensorboard_command()} "
            f"--logdir {config.out}/tb"
        )
    return rows
