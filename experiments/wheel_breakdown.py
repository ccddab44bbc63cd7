"""Where the wheel's regret comes from: the outer region, by phase, per agent.

    python -m experiments.wheel_breakdown [--deltas 0.95 0.99] [--horizon N] [--seeds S]
        [--agents ivi_ts lin_full_post ...]

The wheel (Riquelme et al. 2018): inside the circle |x| <= delta arm 0 pays 1.2 and the others
1.0; outside it, the arm of x's quadrant pays 50. Reward noise is sigma = 0.01, so noise
cannot explain an agent's losses here. For each agent, all seeds as one batch; printed per
row: the share of the regret earned at outer contexts, the outer contexts seen per seed, and
per quarter of the horizon the fraction of outer contexts where the agent pulled the
rewarding arm (mean over seeds), next to the total regret; for agents with a posterior-mean
network (``ivi_ts``) also how often that mean network would have picked the rewarding arm
at the last quarter's outer contexts (a fit problem if it is low too, exploration if not).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ivi_rl import envs
from ivi_rl.agents.bandits import make_agent


def breakdown(agent_name: str, delta: float, horizon: int, seeds: int) -> dict[str, object]:
    problem = envs.make_problem("wheel", delta=delta)
    trials = [problem.sample_trial(horizon, seed=s) for s in range(seeds)]
    ctx = torch.tensor(np.stack([t.contexts for t in trials]))
    rewards = torch.tensor(np.stack([t.rewards for t in trials]))
    exp = np.stack([t.expected_rewards for t in trials])
    outer = np.linalg.norm(ctx.numpy(), axis=-1) > delta  # [S, n]
    agent = make_agent(agent_name, exp.shape[2], ctx.shape[-1], list(range(seeds)), horizon)
    rows = torch.arange(seeds)
    hit = np.zeros((seeds, horizon), dtype=bool)
    mean_hit = np.zeros((seeds, horizon), dtype=bool)  # the posterior-mean network's choice
    regret = np.zeros((seeds, horizon))
    for t in range(horizon):
        a = agent.act(ctx[:, t])
        if hasattr(agent, "mean_values"):
            m = agent.mean_values(ctx[:, t]).argmax(-1).numpy()
            mean_hit[:, t] = exp[np.arange(seeds), t, m] == exp[:, t].max(1)
        agent.observe(ctx[:, t], a, rewards[rows, t, a])
        chosen = exp[np.arange(seeds), t, a.numpy()]
        regret[:, t] = exp[:, t].max(1) - chosen
        hit[:, t] = chosen == exp[:, t].max(1)
    quarters = np.array_split(np.arange(horizon), 4)
    hit_rate = [hit[:, q][outer[:, q]].mean() if outer[:, q].any() else np.nan for q in quarters]
    late = outer[:, quarters[-1]]
    mean_rate = mean_hit[:, quarters[-1]][late].mean() if hasattr(agent, "mean_values") else None
    total = regret.sum(1)
    return {
        "regret": total.mean(),
        "se": total.std(ddof=1) / np.sqrt(seeds) if seeds > 1 else 0.0,
        "outer_share": regret[outer].sum() / regret.sum(),
        "outer_per_seed": outer.sum() / seeds,
        "hit_rate": hit_rate,
        "mean_rate": mean_rate,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deltas", type=float, nargs="+", default=[0.95, 0.99])
    parser.add_argument("--horizon", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--agents", nargs="+", default=["ivi_ts", "lin_full_post"])
    args = parser.parse_args(argv)
    if args.horizon < 4 or args.seeds < 1 or not all(0 < d < 1 for d in args.deltas):
        parser.error("--horizon must be >= 4, --seeds >= 1 and every delta in (0, 1)")
    torch.set_num_threads(1)
    print(
        "| delta | agent | regret (mean ± s.e.) | share at outer contexts | outer contexts "
        "per seed | right arm at outer contexts, quarter 1 | 2 | 3 | 4 | the mean network's, "
        "quarter 4 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for delta in args.deltas:
        for name in args.agents:
            r = breakdown(name, delta, args.horizon, args.seeds)
            rates = " | ".join(f"{x:.2f}" for x in r["hit_rate"])
            mean_rate = "" if r["mean_rate"] is None else f"{r['mean_rate']:.2f}"
            print(
                f"| {delta} | {name} | {r['regret']:.0f} ± {r['se']:.0f} | "
                f"{r['outer_share']:.3f} | {r['outer_per_seed']:.0f} | {rates} | {mean_rate} |"
            )


if __name__ == "__main__":
    main()
