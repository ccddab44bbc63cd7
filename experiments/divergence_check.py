"""IVIDQN's stable step at learning rates far past any that trains.

    python -m experiments.divergence_check [--env CartPole-v1] [--lr 1e12] [--steps 600]
        [--seeds 0-39] [--rules returns,rewards] [--batch-size 8] [--workers 2]
        [--without-stable-step]

Trains IVIDQN at its defaults except the learning rate, ``learning_starts=10``, an update
every step on minibatches of ``--batch-size``, for ``--steps`` steps per seed and reward-scale
rule, and prints one line per rule: the seeds whose training stopped with a diverged loss
(above ``max_loss`` or not finite) and the largest step factor in force at the end.
``--without-stable-step`` runs the same without it (``ivi_rl.contrib``'s ``stable_lr=False``),
the control that shows the learning rate diverges on its own. Exit status 1 if any run diverged.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from itertools import product


def _seeds(text: str) -> list[int]:
    """'0-39' or '0,5,11' -> the seeds."""
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def _rules(text: str) -> list[str]:
    """'returns,rewards' -> the reward-scale rules, each one IVIDQN accepts."""
    from ivi_rl.agents.sb3.ivi_dqn import SCALE_RULES

    rules = text.split(",")
    for rule in rules:
        if rule not in SCALE_RULES:
            raise argparse.ArgumentTypeError(
                f"{rule!r} is not a reward-scale rule; expected a comma-separated list of "
                + ", ".join(repr(r) for r in SCALE_RULES)
            )
    return rules


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--lr", type=float, default=1e12)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=_seeds, default=_seeds("0-39"))
    parser.add_argument("--rules", type=_rules, default=_rules("returns,rewards"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--without-stable-step", action="store_true")
    return parser


def run_one(env_id: str, rule: str, seed: int, args: argparse.Namespace) -> tuple[bool, float]:
    """(diverged, the step factor in force at the end: 1 without the stable step)."""
    import gymnasium as gym
    import torch

    torch.set_num_threads(1)
    from ivi_rl.agents import IVIDQN
    from ivi_rl.contrib.sb3 import VariantIVIDQN

    cls, extra = (VariantIVIDQN, {"stable_lr": False}) if args.without_stable_step else (IVIDQN, {})
    model = cls(
        "MlpPolicy",
        gym.make(env_id),
        learning_rate=args.lr,
        learning_starts=10,
        batch_size=args.batch_size,
        train_freq=1,
        reward_scale=rule,
        seed=seed,
        **extra,
    )
    try:
        model.learn(args.steps)
    except FloatingPointError as error:
        if "diverged" not in str(error) and "training loss is" not in str(error):
            raise
        return True, float("nan")
    return False, 1.0 if args.without_stable_step else model._stability.factor


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rules = args.rules
    tasks = list(product(rules, args.seeds))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_one, args.env, rule, seed, args) for rule, seed in tasks]
        results = [f.result() for f in futures]
    step = "without the stable step" if args.without_stable_step else "stable step"
    any_diverged = False
    for rule in rules:
        mine = [
            (seed, r) for (r_rule, seed), r in zip(tasks, results, strict=True) if r_rule == rule
        ]
        diverged = [seed for seed, (bad, _) in mine if bad]
        factors = [factor for _, (bad, factor) in mine if not bad]
        any_diverged |= bool(diverged)
        largest = f"{max(factors):.3g}" if factors else "-"
        print(
            f"{args.env} lr {args.lr:g}, {args.steps} steps, batch {args.batch_size}, {step}, "
            f"reward_scale={rule!r}: diverged {len(diverged)} of {len(mine)} seeds "
            f"{diverged}; largest final factor {largest}"
        )
    return 1 if any_diverged else 0


if __name__ == "__main__":
    sys.exit(main())
