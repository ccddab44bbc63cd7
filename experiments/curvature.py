"""The curvature behind IVI-TS's stable step on a dataset, retrain by retrain.

    python -m experiments.curvature DATASET [--setting key=value ...] [--seeds 0,1]
        [--horizon 2000] [--every 250] [--data-dir DIR]

Runs IVI-TS (its defaults, or with ``--setting``s) on the dataset and prints, every
``--every`` steps, each layer's top Gauss-Newton eigenvalue kappa in the metric of the group
learning rates (``ivi_rl.layer_curvatures``, as the stable step measures it) and the factor the
step took, per seed; then the largest kappa per layer over the run and the fraction of retrains
at which the step was capped. The bounds: 0.8 (1 - momentum) = 0.08 for layers with a
covariance at the default momentum 0.9, 0.8 * 2 (1 + momentum) = 3.04 for deterministic ones.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from experiments import parse_setting
from ivi_rl import envs
from ivi_rl.agents.bandits import make_agent, play


def trace(dataset: str, seeds: list[int], horizon: int, every: int, settings: dict, data_dir):
    """(steps, kappa [retrains, seeds, layers], factor [retrains, seeds])."""
    kwargs = {"data_dir": data_dir}  # synthetic datasets ignore it
    name, _, extra = dataset.partition(":")  # e.g. wheel:delta=0.95, stress:kind=rare_category
    if extra:
        kwargs.update(dict(parse_setting(part) for part in extra.split(",")))
    problem = envs.make_problem(name, **kwargs)
    trials = [problem.sample_trial(horizon, seed=s) for s in seeds]
    agent = make_agent(
        "ivi_ts", problem.num_actions, problem.context_dim, seeds, horizon, **settings
    )
    steps, kappas, factors = [], [], []

    def on_mark(t: int, _actions) -> None:
        steps.append(t)
        kappas.append(agent.last_curvature.numpy().copy())
        factors.append(agent.last_step_scale.numpy().copy())

    train_every = agent.settings.train_every
    marks = [t for t in range(train_every, horizon + 1, train_every)]
    contexts = torch.tensor(np.stack([t.contexts for t in trials]))
    rewards = torch.tensor(np.stack([t.rewards for t in trials]))
    play(agent, contexts, rewards, marks=marks, on_mark=on_mark)
    shown = [i for i, t in enumerate(steps) if t % every == 0]
    return [steps[i] for i in shown], np.array(kappas), np.array(factors), shown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="a dataset name, with settings: wheel:delta=0.95")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--horizon", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--data-dir")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = dict(parse_setting(s) for s in args.setting)
    steps, kappa, factor, shown = trace(
        args.dataset, seeds, args.horizon, args.every, settings, args.data_dir
    )
    for seed_index, seed in enumerate(seeds):
        print(f"seed {seed}: step, kappa per layer, factor")
        for step, i in zip(steps, shown, strict=True):
            values = " ".join(f"{k:.3f}" for k in kappa[i, seed_index])
            print(f"  {step:>6}  {values}  {factor[i, seed_index]:.3f}")
    peak = " ".join(f"{k:.3f}" for k in kappa.max(axis=(0, 1)))
    print(f"max kappa per layer: {peak}; capped at {100 * (factor < 1).mean():.0f}% of retrains")


if __name__ == "__main__":
    main()
