"""Deep Sea runs in bsuite's own CSV logging format, for bsuite's analysis code and report.

bsuite (Osband et al., ICLR 2020) logs one CSV per experiment id into a results folder: file
``bsuite_id_-_<env>-<index>.csv`` (its ``csv_logging``; ``/`` of the id replaced by ``-``),
one row at each episode of its logarithmic schedule (1-10, 12, 14, 17, 20, 25, 30, 40, ...;
``wrappers._logarithmic_logging``) with the columns ``steps``, ``episode``, ``total_return``,
``episode_len``, ``episode_return`` and Deep Sea's ``total_bad_episodes`` and
``denoised_return``. The experiment index is the position in bsuite's sweep (size N = 10 + 2i;
mapping seed 42 for deep_sea, 0 for deep_sea_stochastic), so only those runs are written.

A run that stops at its solve episode gets that episode as its last row: bsuite's
``find_solution`` (the first logged episode whose running bad-episode fraction is below its
threshold) then finds exactly the episode this runner reports, and bsuite's score equals
:func:`ivi_rl.envs.deep_sea_score`. One folder per agent and seed (``bsuite/<agent>/seed_<s>``):
bsuite's ``load_bsuite`` takes a mapping from a run's name to its folder.
"""

from __future__ import annotations

import csv
import io

import numpy as np

__all__ = [
    "COLUMNS",
    "MAPPING_SEEDS",
    "SWEEP_SIZES",
    "bsuite_id",
    "csv_name",
    "episode_rows",
    "experiment_name",
    "log_schedule",
]

SWEEP_SIZES = tuple(range(10, 51, 2))
"""bsuite's Deep Sea sizes: experiment ``deep_sea/i`` is N = SWEEP_SIZES[i]."""
MAPPING_SEEDS = {"deep_sea": 42, "deep_sea_stochastic": 0}
"""bsuite's action-mapping seed per experiment: deep_sea's sweep sets 42, deep_sea_stochastic's
sweep sets none, so its loader's default 0 holds."""
COLUMNS = (
    "steps",
    "episode",
    "total_return",
    "episode_len",
    "episode_return",
    "total_bad_episodes",
    "denoised_return",
)
_RATIOS = (1.0, 1.2, 1.4, 1.7, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)


def experiment_name(deterministic: bool) -> str:
    """bsuite's Deep Sea experiment: 'deep_sea', or 'deep_sea_stochastic'."""
    return "deep_sea" if deterministic else "deep_sea_stochastic"


def bsuite_id(size: int, deterministic: bool, mapping_seed: int | None) -> str | None:
    """bsuite's id of a Deep Sea run (``deep_sea/3`` is N = 16, mapping seed 42), or None if
    bsuite's sweep has no such experiment: another size, or another mapping seed than the
    experiment's (``None``: actions not randomized)."""
    name = experiment_name(deterministic)
    if size not in SWEEP_SIZES or mapping_seed != MAPPING_SEEDS[name]:
        return None
    return f"{name}/{SWEEP_SIZES.index(size)}"


def csv_name(experiment: str) -> str:
    """The file bsuite's CSV logger writes for an id."""
    return f"bsuite_id_-_{experiment.replace('/', '-')}.csv"


def log_schedule(episodes: int) -> list[int]:
    """bsuite's logged episodes up to ``episodes`` (its logarithmic schedule), and the last."""
    logged = []
    for episode in range(1, episodes + 1):
        power = 10.0 ** np.floor(np.log10(episode))
        if any(episode == power * r for r in _RATIOS):
            logged.append(episode)
    if episodes and logged[-1:] != [episodes]:
        logged.append(episodes)
    return logged


def episode_rows(size: int, returns: np.ndarray, bad: np.ndarray, denoised: np.ndarray) -> str:
    """The CSV text of one run: per-episode returns, bad flags and cumulative denoised
    returns of an N = ``size`` Deep Sea (every episode is N steps)."""
    total_return, total_bad = np.cumsum(returns), np.cumsum(bad.astype(np.int64))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for episode in log_schedule(len(returns)):
        i = episode - 1
        writer.writerow(
            (
                episode * size,
                episode,
                repr(float(total_return[i])),
                size,
                repr(float(returns[i])),
                int(total_bad[i]),
                repr(float(denoised[i])),
            )
        )
    return out.getvalue()
