"""Where IVIDQN's prior uncertainty goes while Deep Sea's reward is still unseen.

    python -m experiments.deep_sea_spread [--config experiments/deep_sea.toml]
        [--agent ivi_dqn] [--size 18] [--seed 0] [--checkpoints 0,100,200,400] [--draws 256]

Trains one ``ivi_dqn`` agent of the config (chosen by its label) on Deep Sea N = ``size``
and, at each checkpoint (episodes trained so far), prints: the good episodes so far; the
furthest diagonal cell visited; the posterior spread (std over ``draws`` fresh draws) of
Q(right) - Q(left) averaged over the cells *never visited* and over the visited ones; and the
root-mean-square of the output layer's mean weights relative to their prior draw.

What the IVI picture promises is that a never-visited cell keeps its prior spread (its
one-hot input column receives no gradient). What it does not promise for a deep network is
that the *shared* layers downstream of that column leave it alone: before any reward is seen
every TD target is about 0, and the expected loss at visited cells is lowered fastest by
shrinking the shared readout, which removes the spread at every cell, visited or not.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np
import torch

from ivi_rl.agents import IVIDQN
from ivi_rl.pipeline.configs import ConfigError
from ivi_rl.pipeline.rl_config import ALGORITHMS, build_agent, load_rl_config, make_env
from ivi_rl.pipeline.rl_runner import EpisodeLogger


@dataclasses.dataclass(frozen=True)
class SpreadRow:
    episodes: int
    good_episodes: int
    furthest_diagonal: int  # largest i such that cell (i, i) was visited
    spread_unvisited: float  # mean over never-visited cells of std_draws(Q(right) - Q(left))
    spread_visited: float
    readout_rms_ratio: float  # rms of the output layer's mean weights / its rms at the prior
    # (NaN for a zero-mean prior, whose readout rms starts at 0: there is no ratio)


class _Visits(EpisodeLogger):
    """The runner's episode logger (good episodes), also counting visits per cell from the
    observations (one-hot, flattened)."""

    def __init__(self, size: int) -> None:
        super().__init__(None, False, lambda n: None)
        self.visits = np.zeros((size, size), dtype=np.int64)
        self.visits[0, 0] = 1  # every episode starts there

    def _on_step(self) -> bool:
        for obs in self.locals["new_obs"]:
            if obs.any():  # after the last step the observation is all zeros
                self.visits[np.unravel_index(int(obs.argmax()), self.visits.shape)] += 1
        return super()._on_step()

    @property
    def good(self) -> int:
        return len(self.bad) - sum(self.bad)


def _rms(weight: torch.Tensor) -> float:
    return weight.detach().pow(2).mean().sqrt().item()


def _agent_and_env(config: str, agent: str, size: int):
    loaded = load_rl_config(config)
    spec = next((a for a in loaded.agents if a.label == agent), None)
    env = next((e for e in loaded.envs if e.kwargs.get("size") == size), None)
    if spec is None or not issubclass(ALGORITHMS[spec.name], IVIDQN) or env is None:
        raise ConfigError(
            f"{config} needs an IVIDQN agent (ivi_dqn or a variant) labelled {agent!r}"
            f" and a Deep Sea of size {size}"
        )
    return spec, env


def spread_trace(
    config: str, agent: str, size: int, seed: int, checkpoints: list[int], draws: int
) -> list[SpreadRow]:
    agent_spec, spec = _agent_and_env(config, agent, size)
    env = make_env(spec)
    model = build_agent(agent_spec, env, seed=seed)
    net = model.policy.q_net.q_net

    def readout() -> torch.Tensor:  # the output layers' mean weights (one per action net)
        return torch.cat([n.layers[-1].weight for n in getattr(net, "nets", [net])])

    prior_rms = _rms(readout())
    cells = torch.eye(size * size)
    generator = torch.Generator().manual_seed(seed + 12345)  # not the agent's generators
    visits, trained, rows = _Visits(size), 0, []
    for episodes in checkpoints:
        if episodes > trained:
            model.learn(size * (episodes - trained), callback=visits, reset_num_timesteps=False)
            trained = episodes
        with torch.no_grad():
            q = model.policy.q_net.sampled_q(cells, (draws,), generator)
        # the std of Q(a0) - Q(a1) is that of Q(right) - Q(left): which is which is a sign
        spread = (q[..., 0] - q[..., 1]).reshape(draws, size, size).std(0)
        unvisited = torch.as_tensor(visits.visits == 0)
        rows.append(
            SpreadRow(
                episodes=episodes,
                good_episodes=visits.good,
                furthest_diagonal=int(np.flatnonzero(np.diag(visits.visits)).max()),
                spread_unvisited=float(spread[unvisited].mean()) if unvisited.any() else 0.0,
                spread_visited=float(spread[~unvisited].mean()),
                readout_rms_ratio=_rms(readout()) / prior_rms if prior_rms > 0 else math.nan,
            )
        )
    return rows


def _checkpoints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",")]
    if any(v < 0 for v in values) or values != sorted(values):
        raise ValueError
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/deep_sea.toml")
    parser.add_argument("--agent", default="ivi_dqn", help="the agent's label in the config")
    parser.add_argument("--size", type=int, default=18)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoints", default="0,100,200,400")
    parser.add_argument("--draws", type=int, default=256)
    args = parser.parse_args(argv)
    try:
        checkpoints = _checkpoints(args.checkpoints)
    except ValueError:
        parser.error(
            f"--checkpoints {args.checkpoints!r}: accepted: ascending episode counts >= 0, "
            "comma-separated (e.g. 0,100,200)"
        )
    if args.draws < 2:
        parser.error(f"--draws {args.draws} must be >= 2 (a spread needs two draws)")
    if args.seed < 0:
        parser.error(f"--seed {args.seed} must be >= 0")
    torch.set_num_threads(1)
    try:
        rows = spread_trace(args.config, args.agent, args.size, args.seed, checkpoints, args.draws)
    except ConfigError as err:
        parser.error(str(err))
    print(f"Deep Sea N = {args.size}, agent {args.agent}, seed {args.seed}, {args.draws} draws")
    print("episodes  good  furthest diagonal  spread never-visited  spread visited  readout rms")
    for r in rows:
        print(
            f"{r.episodes:8d} {r.good_episodes:5d} {r.furthest_diagonal:18d} "
            f"{r.spread_unvisited:21.4f} {r.spread_visited:15.4f} "
            + (
                f"{r.readout_rms_ratio:12.3f}"
                if math.isfinite(r.readout_rms_ratio)
                else "  n/a (mean 0)"
            )
        )


if __name__ == "__main__":
    main()
