"""Wall time per environment step of the Deep Sea agents, relative to DQN.

    python -m experiments.bench_rl_step [--config experiments/deep_sea.toml] [--size 10]
        [--env ENV_ID] [--steps 2000] [--repeats 3] [--threads 1]

Each agent of the config is built with the config's settings on Deep Sea N = ``size`` (or,
with ``--env``, on that gymnasium env with the same settings, e.g. ``CartPole-v1``) and
learns ``steps`` steps after its warm-up (``learning_starts``), in one process, agents
interleaved ``repeats`` times so that a slow moment of a shared machine hits all of them. The
time covers SB3's whole loop: acting, storing, one gradient update per step, target updates.
Prints the median milliseconds per step per agent and its ratio to DQN's.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import gymnasium as gym
import torch

from ivi_rl.pipeline.configs import AgentSpec, ConfigError
from ivi_rl.pipeline.rl_config import EnvSpec, build_agent, load_rl_config, make_env


def time_agent(env: EnvSpec, agent: AgentSpec, steps: int) -> float:
    """Milliseconds per environment step of ``steps`` steps after the agent's warm-up."""
    model = build_agent(agent, make_env(env), seed=0)
    model.learn(total_timesteps=max(model.learning_starts, 1) + 10)  # warm-up, first updates
    start = time.perf_counter()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    return 1e3 * (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/deep_sea.toml")
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--env", default=None, help="a gymnasium env id instead of Deep Sea")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    for flag in ("steps", "repeats", "threads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} {getattr(args, flag)} must be >= 1")
    torch.set_num_threads(args.threads)
    try:
        config = load_rl_config(args.config)
    except ConfigError as err:
        parser.error(str(err))
    env = next((e for e in config.envs if e.kwargs.get("size") == args.size), None)
    if env is None:
        parser.error(f"--size {args.size} is not a size of {args.config}")
    if args.env is not None:
        try:
            gym.spec(args.env)
        except gym.error.Error as err:
            parser.error(f"--env {args.env!r}: {err}")
        env = EnvSpec(label=args.env, id=args.env, kwargs={}, episodes=None, timesteps=None)
    if "dqn" not in {a.name for a in config.agents}:
        parser.error(f"{args.config} has no 'dqn' agent to compare with")
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), {args.env or f'Deep Sea N = {args.size}'}, "
        f"{args.steps} steps"
    )
    times: dict[str, list[float]] = {a.label: [] for a in config.agents}
    for _ in range(args.repeats):
        for agent in config.agents:
            times[agent.label].append(time_agent(env, agent, args.steps))
    dqn = statistics.median(times[next(a.label for a in config.agents if a.name == "dqn")])
    width = max(len(label) for label in times)
    print(f"{'agent':>{width}} {'ms/step':>8} {'x DQN':>6}")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:>{width}} {median:>8.3f} {median / dqn:>6.2f}")


if __name__ == "__main__":
    main()
