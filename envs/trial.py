"""A whole bandit trial as arrays: what every agent sees in one run of the Showdown loop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Trial", "check_finite"]


def check_finite(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` if every entry is a finite number; else one error naming the argument, how
    many entries are not finite and where the first one is."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} has dtype {array.dtype}; accepted: a numeric array")
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite values (NaN or inf; the first at index "
            f"{first}: {array[first]}); accepted: finite numbers only"
        )
    return array


@dataclass(frozen=True)
class Trial:
    """Contexts and full-information rewards of one trial of horizon n.

    Attributes:
        contexts: [n, d] float32, the context shown at each step.
        rewards: [n, k] float32, the reward every arm would realise at each step.
        expected_rewards: [n, k] float64, the mean reward of every arm given the context;
            regret is computed from these, so it is exact and counterfactual.
    """

    contexts: np.ndarray
    rewards: np.ndarray
    expected_rewards: np.ndarray

    def __post_init__(self) -> None:
        n, k = self.rewards.shape
        if self.contexts.ndim != 2 or self.contexts.shape[0] != n:
            raise ValueError(
                f"contexts {self.contexts.shape} and rewards {self.rewards.shape} must be "
                "[n, d] and [n, k]"
            )
        if self.expected_rewards.shape != (n, k):
            raise ValueError(
                f"expected_rewards {self.expected_rewards.shape} must match rewards {(n, k)}"
            )
        for name in ("contexts", "rewards", "expected_rewards"):
            check_finite(getattr(self, name), f"the trial's {name}")

    @property
    def horizon(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_actions(self) -> int:
        return self.rewards.shape[1]

    @property
    def context_dim(self) -> int:
        return self.contexts.shape[1]

    @property
    def optimal_actions(self) -> np.ndarray:
        """[n] the arm with the highest expected reward (lowest index on ties)."""
        return self.expected_rewards.argmax(axis=1)

    @property
    def optimal_rewards(self) -> np.ndarray:
        """[n] the expected reward of the best arm."""
        return self.expected_rewards.max(axis=1)

    def regret(self, actions: np.ndarray) -> np.ndarray:
        """[n] expected per-step regret of the given actions (one per step)."""
        actions = np.asarray(actions)
        if actions.shape != (self.horizon,):
            raise ValueError(f"actions has shape {actions.shape}; expected ({self.horizon},)")
        chosen = np.take_along_axis(self.expected_rewards, actions[:, None], axis=1)[:, 0]
        return self.optimal_rewards - chosen

    def subset(self, stop: int) -> Trial:
        """The first ``stop`` steps."""
        return Trial(self.contexts[:stop], self.rewards[:stop], self.expected_rewards[:stop])
