"""What each run of a sparse-reward classic-control benchmark did before and after it first
reached the goal, from its result files.

    python -m experiments.goal_runs OUT --env acrobot --limit 500

Reads ``OUT/results/<env>/<agent>/seed_*.npz`` (the runs of ``ivi-rl rl``) for envs that pay
-1 a step until the goal, where an episode cut at the time limit returns exactly ``-limit``
(Acrobot-v1: 500, MountainCar-v0: 200), and prints a row per run: its training episodes, the
first that reached the goal (1-based; '-' if none), how many did, and the greedy policy's final
and best mean evaluation return. A run whose greedy policy ends at ``-limit`` shows whether its
draws never reached the goal or reached it and did not keep it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

COLUMNS = ("agent", "seed", "episodes", "first goal", "goals", "final", "best")


def goal_facts(returns: np.ndarray, limit: int) -> dict[str, int]:
    """``first`` episode that reached the goal (1-based, 0 if none) and ``goals``, the episodes
    that did (return above ``-limit``)."""
    reached = np.flatnonzero(np.asarray(returns, dtype=np.float64) > -limit)
    return dict(first=int(reached[0]) + 1 if reached.size else 0, goals=int(reached.size))


def rows(out: Path, env: str, limit: int) -> list[tuple]:
    found = []
    for path in sorted(out.glob(f"results/{env}/*/seed_*.npz")):
        with np.load(path) as run:
            facts = goal_facts(run["returns"], limit)
            greedy = run["eval_returns"].mean(axis=1)
            found.append(
                (path.parts[-2], int(run["seed"]), len(run["returns"]), facts["first"] or "-",
                 facts["goals"], round(float(greedy[-1]), 1), round(float(greedy.max()), 1))
            )  # fmt: skip
    return sorted(found, key=lambda row: (row[0], row[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a benchmark's output folder, e.g. runs/classic")
    parser.add_argument("--env", required=True, help="the env's label, e.g. acrobot")
    parser.add_argument("--limit", type=int, required=True, help="the env's time limit")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error(f"--limit={args.limit} is not accepted; accepted: an integer >= 1")
    found = rows(args.out, args.env, args.limit)
    if not found:
        parser.exit(2, f"no results for env {args.env!r} in {args.out}/results\n")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in found:
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main()
