"""What each Deep Sea run of a sweep did with the treasure, from its result files.

    python -m experiments.deep_sea_runs OUT [--agent ivi_dqn]

Reads ``OUT/results/<env label>/<agent>/seed_*.npz`` (the runs of ``ivi-rl rl``) and prints a
row per run: the episodes it ran, its solve episode, the first episode that reached the
treasure, how many did, the longest run of episodes between two that did (an agent that found
the treasure and lost it), and how many of its last 1,000 episodes did. A run that never
solves shows whether its draws never reached the treasure or reached it and stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

COLUMNS = ("env", "N", "seed", "episodes", "solved", "first", "treasures", "gap", "last 1,000")


def treasure_facts(denoised: np.ndarray) -> dict[str, int]:
    """From bsuite's ``denoised_return`` after each episode (the treasures found so far):
    ``first`` treasure episode (1-based, 0 if none), ``treasures``, the longest ``gap`` of
    episodes strictly between two treasures, and ``last`` = treasures among the final 1,000
    episodes."""
    found = np.diff(np.asarray(denoised, dtype=np.float64), prepend=0.0) > 0
    good = np.flatnonzero(found)
    return dict(
        first=int(good[0]) + 1 if good.size else 0,
        treasures=int(good.size),
        gap=int(np.diff(good).max()) - 1 if good.size > 1 else 0,
        last=int((good >= len(found) - 1000).sum()),
    )


def rows(out: Path, agent: str) -> list[tuple]:
    found = []
    for path in sorted(out.glob(f"results/*/{agent}/seed_*.npz")):
        with np.load(path) as run:
            if int(run["size"]) < 0:
                continue  # not a Deep Sea run
            facts = treasure_facts(run["denoised"])
            solved = int(run["solved"])
            found.append(
                (path.parts[-3], int(run["size"]), int(run["seed"]), len(run["denoised"]),
                 solved if solved >= 0 else "no", facts["first"] or "-",
                 facts["treasures"], facts["gap"], facts["last"])
            )  # fmt: skip
    return sorted(found, key=lambda row: (row[0].rstrip("0123456789"), row[1], row[2]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a sweep's output folder, e.g. runs/deep_sea")
    parser.add_argument("--agent", default="ivi_dqn", help="the agent's label")
    args = parser.parse_args(argv)
    found = rows(args.out, args.agent)
    if not found:
        parser.exit(2, f"no Deep Sea results for agent {args.agent!r} in {args.out}/results\n")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in found:
        print("| " + " | ".join(f"{v:,}" if isinstance(v, int) else v for v in row) + " |")


if __name__ == "__main__":
    main()
