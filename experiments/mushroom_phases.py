"""Where IVI-TS loses mushroom: regret per phase with the realised (noisy) rewards and with
their expectations, and why it eats poisonous mushrooms late.

    python -m experiments.mushroom_phases [--data-dir DIR] [--horizon N] [--seeds S]
        [--agents ivi_ts lin_full_post ...] [--setting agent:key=value ...]

For each agent and reward kind, all seeds run as one batch (the agents' own per-trial
streams). Printed per row: regret per quarter of the horizon (mean over seeds), poisonous
mushrooms eaten in the second half (per seed), and for posterior agents with a mean network
(``ivi_ts``) how many of those late poisonous meals the posterior mean would also have
eaten: the mean's error, not the draw's spread, if that share is high.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from experiments import parse_setting
from ivi_rl import envs
from ivi_rl.agents.bandits import make_agent


def run(agent_name, trials, settings, expected: bool) -> dict[str, object]:
    seeds = list(range(len(trials)))
    ctx = torch.tensor(np.stack([t.contexts for t in trials]))
    field = "expected_rewards" if expected else "rewards"
    rewards = torch.tensor(np.stack([getattr(t, field) for t in trials]), dtype=torch.float32)
    exp = np.stack([t.expected_rewards for t in trials])
    n, k = exp.shape[1], exp.shape[2]
    agent = make_agent(agent_name, k, ctx.shape[-1], seeds, n, **settings)
    rows = torch.arange(len(seeds))
    regret = np.zeros((len(seeds), n))
    late_bad = late_bad_mean = 0
    for t in range(n):
        a = agent.act(ctx[:, t])
        if t >= n // 2:
            bad = (exp[:, t, 1] < 0) & (a.numpy() == 1)  # ate a poisonous mushroom
            late_bad += int(bad.sum())
            if bad.any() and hasattr(agent, "mean_values"):
                mean_eats = agent.mean_values(ctx[:, t]).argmax(-1).numpy() == 1
                late_bad_mean += int((bad & mean_eats).sum())
        agent.observe(ctx[:, t], a, rewards[rows, t, a])
        regret[:, t] = exp[:, t].max(1) - exp[np.arange(len(seeds)), t, a.numpy()]
    return {
        "phases": regret.reshape(len(seeds), 4, -1).sum(2).mean(0),
        "total": regret.sum(1),
        "late_poisonous": late_bad / len(seeds),
        "by_mean": late_bad_mean / len(seeds) if hasattr(agent, "mean_values") else None,
    }


def _settings(pairs: list[str]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for pair in pairs:
        agent, _, rest = pair.partition(":")
        key, value = parse_setting(rest)
        out.setdefault(agent, {})[key] = value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--horizon", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--agents", nargs="+", default=["lin_full_post", "ivi_ts"])
    parser.add_argument("--setting", action="append", default=[], help="agent:key=value")
    args = parser.parse_args(argv)
    if args.horizon < 4 or args.horizon % 4 or args.seeds < 1:
        parser.error("--horizon must be a positive multiple of 4 and --seeds >= 1")
    torch.set_num_threads(1)
    problem = envs.make_problem("mushroom", data_dir=args.data_dir)
    trials = [problem.sample_trial(args.horizon, seed=s) for s in range(args.seeds)]
    settings = _settings(args.setting)
    print(
        "| rewards | agent | phase 1 | 2 | 3 | 4 | regret (mean ± s.e.) "
        "| poisonous eaten, 2nd half (per seed) | of which the mean would eat |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for expected in (False, True):
        for name in args.agents:
            r = run(name, trials, settings.get(name, {}), expected)
            se = r["total"].std(ddof=1) / np.sqrt(len(trials)) if len(trials) > 1 else 0.0
            phases = " | ".join(f"{p:.0f}" for p in r["phases"])
            by_mean = "" if r["by_mean"] is None else f"{r['by_mean']:.1f}"
            kind = "expected" if expected else "realised"
            print(
                f"| {kind} | {name} | {phases} | {r['total'].mean():.0f} ± {se:.0f} "
                f"| {r['late_poisonous']:.1f} | {by_mean} |"
            )


if __name__ == "__main__":
    main()
