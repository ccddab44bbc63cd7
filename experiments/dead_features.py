"""How many last-layer ReLU features of a point-estimate baseline are dead after training.

    python -m experiments.dead_features [--data-dir DIR] [--dataset statlog] [--seed 100]
        [--steps 1000]

Runs NeuralLinear (its network is NeuralGreedy's: 100 x 100, RMSProp on the Showdown
schedule) for ``--steps`` steps at two settings, lr 0.1 on raw rewards (the Showdown code's
values) and the defaults (lr 0.01, standardised rewards), then evaluates the last hidden
layer on 2,000 fresh contexts: features that are 0 on every one of them are dead.
"""

from __future__ import annotations

import argparse

import torch

from ivi_rl import envs
from ivi_rl.agents.bandits import make_agent

SETTINGS = {"lr 0.1, raw rewards": {"lr": 0.1, "reward_scaling": "none"}, "defaults": {}}


def dead_features(problem, seed: int, steps: int, settings: dict) -> tuple[int, int, float]:
    trial = problem.sample_trial(steps, seed=seed)
    ctx, rewards = torch.tensor(trial.contexts)[None], torch.tensor(trial.rewards)[None]
    agent = make_agent(
        "neural_linear", trial.num_actions, trial.context_dim, [seed], steps, **settings
    )
    for t in range(steps):
        a = agent.act(ctx[:, t])
        agent.observe(ctx[:, t], a, rewards[0, t, a])
    fresh = torch.tensor(problem.sample_trial(2000, seed=seed + 1).contexts)[None]
    z = agent._features(fresh)[0]
    dead = int((z.abs().sum(0) == 0).sum())
    return dead, z.shape[1], float(z.norm(dim=1).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--dataset", default="statlog")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    problem = envs.make_problem(args.dataset, data_dir=args.data_dir)
    print(f"{args.dataset}, seed {args.seed}, {args.steps} steps of neural_linear")
    for name, settings in SETTINGS.items():
        dead, width, norm = dead_features(problem, args.seed, args.steps, settings)
        print(
            f"{name:>20}: {dead} of {width} last-layer features dead, mean feature norm {norm:.3f}"
        )


if __name__ == "__main__":
    main()
