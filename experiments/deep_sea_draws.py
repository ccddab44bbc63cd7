"""What IVIDQN's posterior draws do on Deep Sea after some training.

    python -m experiments.deep_sea_draws [--config experiments/deep_sea.toml] [--size 18]
        [--seed 0] [--episodes 200] [--draws 256]

Trains the config's ``ivi_dqn`` agent on Deep Sea N = ``size`` for ``episodes`` episodes, then
evaluates ``draws`` fresh posterior draws on every cell and prints, for each diagonal cell
(the optimal path), the fraction of draws that choose 'right'; the fraction choosing action 0
over all cells, where 'right' is action 0 or 1 at random (bsuite's mapping), so anything far
from 0.5 is a preference for an action *index* shared by all cells; and the mean over cells of
the posterior mean of Q(a0) - Q(a1) against its spread (std over draws). Deep exploration needs
P(right) away from 0 along the diagonal, i.e. per-draw randomness larger than what the shared
layers learned.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from ivi_rl.agents import IVIDQN
from ivi_rl.pipeline.configs import ConfigError
from ivi_rl.pipeline.rl_config import ALGORITHMS, build_agent, load_rl_config, make_env
from ivi_rl.pipeline.rl_runner import EpisodeLogger


@dataclasses.dataclass(frozen=True)
class DrawReport:
    good_episodes: int
    episodes: int
    p_right_diagonal: np.ndarray  # [size]
    p_action0: float
    mean_q_gap: float  # mean over cells of the posterior mean's Q(a0) - Q(a1)
    draw_spread: float  # mean over cells of the std over draws of Q(a0) - Q(a1)


def draw_report(config: str, size: int, seed: int, episodes: int, draws: int) -> DrawReport:
    loaded = load_rl_config(config)
    agent = next((a for a in loaded.agents if issubclass(ALGORITHMS[a.name], IVIDQN)), None)
    spec = next((e for e in loaded.envs if e.kwargs.get("size") == size), None)
    if agent is None or spec is None:
        raise ConfigError(
            f"{config} needs an IVIDQN agent (ivi_dqn or a variant) and a Deep Sea of size {size}"
        )
    env = make_env(spec)
    model = build_agent(agent, env, seed=seed)
    logger = EpisodeLogger(None, False, lambda n: None)
    model.learn(size * episodes, callback=logger)
    cells = torch.eye(size * size)
    q_net = model.policy.q_net
    with torch.no_grad():
        q = q_net.sampled_q(cells, (draws,))  # [draws, cells, 2]
        gap = q[..., 0] - q[..., 1]
        mean_q = q_net.mean_q(cells)
        mean_gap = mean_q[:, 0] - mean_q[:, 1]
    p_action0 = (gap > 0).double().mean(0).reshape(size, size).numpy()
    right_is_0 = env.unwrapped.optimal_actions() == 0
    p_right = np.where(right_is_0, p_action0, 1 - p_action0)
    return DrawReport(
        good_episodes=int(np.sum(~np.array(logger.bad, dtype=bool))),
        episodes=len(logger.bad),
        p_right_diagonal=np.diag(p_right).copy(),
        p_action0=float(p_action0.mean()),
        mean_q_gap=float(mean_gap.mean()),
        draw_spread=float(gap.std(0).mean()),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/deep_sea.toml")
    parser.add_argument("--size", type=int, default=18)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--draws", type=int, default=256)
    args = parser.parse_args(argv)
    for flag in ("episodes", "draws"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} {getattr(args, flag)} must be >= 1")
    if args.seed < 0:
        parser.error(f"--seed {args.seed} must be >= 0")
    torch.set_num_threads(1)
    try:
        r = draw_report(args.config, args.size, args.seed, args.episodes, args.draws)
    except ConfigError as err:
        parser.error(str(err))
    print(f"Deep Sea N = {args.size}, seed {args.seed}: {r.good_episodes} good of {r.episodes}")
    print("P(right) along the diagonal:", " ".join(f"{p:.2f}" for p in r.p_right_diagonal))
    print(f"P(action 0) over all cells: {r.p_action0:.3f}")
    print(
        f"posterior mean Q(a0) - Q(a1): {r.mean_q_gap:+.4f}; its spread over draws: "
        f"{r.draw_spread:.4f}"
    )


if __name__ == "__main__":
    main()
