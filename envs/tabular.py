"""Bandit problems backed by tables: labelled data, mushroom, stored reward matrices.

Rows are drawn per trial as in the Showdown: without replacement (a shuffle, then the first
n rows) except for mushroom, which resamples with replacement. Classification contexts are
z-scored over the trial's own rows *after* subsampling (the Showdown's choice: it uses the
trial's statistics; zero-std columns are left unscaled), and one-hot columns are expanded with
categories taken over the whole table, so d does not depend on n.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .problems import BanditProblem, _check_arms
from .trial import Trial, check_finite

__all__ = [
    "ArraysProblem",
    "ClassificationProblem",
    "FinancialProblem",
    "MushroomProblem",
    "OneHot",
]


class OneHot:
    """One-hot expansion of integer-coded categorical columns next to numeric ones."""

    def __init__(self, table: np.ndarray, categorical: Sequence[int] = ()) -> None:
        self.categorical = list(categorical)
        self.numeric = [c for c in range(table.shape[1]) if c not in set(self.categorical)]
        self.sizes = [int(table[:, c].max()) + 1 for c in self.categorical]
        self.offsets = np.cumsum([0, *self.sizes[:-1]]).astype(np.int64)
        self.dim = len(self.numeric) + sum(self.sizes)
        numeric = table[:, self.numeric]
        low = min(0.0, float(numeric.min())) if self.numeric else 0.0
        high = max(1.0, float(numeric.max())) if self.numeric else 1.0
        self.bounds = (low, high)
        """Range of every expanded column (one-hot columns are 0 or 1)."""

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((rows.shape[0], self.dim))
        out[:, : len(self.numeric)] = rows[:, self.numeric]
        if self.categorical:
            cols = len(self.numeric) + self.offsets + rows[:, self.categorical].astype(np.int64)
            np.put_along_axis(out, cols, 1.0, axis=1)
        return out


def _zscore(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std == 0, 1.0, std)


def _check_table(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"X {x.shape} and y {y.shape} must be [N, d] and [N]")
    if x.shape[0] == 0:
        raise ValueError("X has no rows")
    check_finite(x, "x")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(f"y must hold class indices 0..k-1 (integers); got dtype {y.dtype}")


class ClassificationProblem(BanditProblem):
    """Any labelled data (X, y) as a bandit: the arms are the classes, reward 1 for the true
    class and 0 otherwise (so the optimal expected reward is 1).

    Args:
        x: [N, d] features (integer codes in ``categorical`` columns).
        y: [N] class indices 0..k-1.
        num_actions: k (default: max(y) + 1).
        categorical: columns of ``x`` to expand one-hot.
        standardize: z-score the (expanded) contexts over each trial's rows.
        default_horizon: n when none is given (default: N, all rows).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        num_actions: int | None = None,
        categorical: Sequence[int] = (),
        standardize: bool = True,
        default_horizon: int | None = None,
        name: str = "classification",
    ) -> None:
        x, y = np.asarray(x), np.asarray(y)
        _check_table(x, y)
        self.x, self.y, self.name = x, y, name
        self.num_actions = _check_arms(int(y.max()) + 1 if num_actions is None else num_actions)
        if y.max() >= self.num_actions:
            raise ValueError(f"y has class {y.max()} but num_actions={self.num_actions}")
        self.encode = OneHot(x, categorical)
        self.context_dim = self.encode.dim
        self.standardize = standardize
        self.max_horizon = x.shape[0]
        self.default_horizon = default_horizon or x.shape[0]

    def context_bounds(self, horizon):
        if self.standardize:  # a z-score over n values is at most sqrt(n - 1) in size
            return -float(np.sqrt(horizon)), float(np.sqrt(horizon))
        return self.encode.bounds

    def _sample(self, n, rng):
        idx = rng.permutation(self.max_horizon)[:n]
        x = self.encode(self.x[idx])
        if self.standardize:
            x = _zscore(x)
        expected = np.zeros((n, self.num_actions))
        expected[np.arange(n), self.y[idx]] = 1.0
        return Trial(x.astype(np.float32), expected.astype(np.float32), expected)


class MushroomProblem(BanditProblem):
    """The Showdown's mushroom bandit. Arms: 0 = don't eat (reward ``r_noeat``), 1 = eat:
    ``r_eat_safe`` for an edible mushroom; for a poisonous one ``r_eat_poison_bad`` with
    probability ``prob_poison_bad``, else ``r_eat_poison_good``. Contexts are the one-hot
    encoding of the 22 attributes ('?' is a category): d = 117. Rows are drawn with
    replacement, so any horizon works (default 50,000)."""

    name = "mushroom"
    num_actions = 2
    default_horizon = 50_000

    def __init__(
        self,
        codes: np.ndarray,
        edible: np.ndarray,
        *,
        r_noeat: float = 0.0,
        r_eat_safe: float = 5.0,
        r_eat_poison_bad: float = -35.0,
        r_eat_poison_good: float = 5.0,
        prob_poison_bad: float = 0.5,
    ) -> None:
        if not 0.0 <= prob_poison_bad <= 1.0:
            raise ValueError(f"prob_poison_bad={prob_poison_bad!r} must be in [0, 1]")
        self.codes, self.edible = codes, edible.astype(bool)
        self.encode = OneHot(codes, range(codes.shape[1]))
        self.context_dim = self.encode.dim
        self.r_noeat, self.r_eat_safe = r_noeat, r_eat_safe
        self.r_bad, self.r_good, self.p_bad = r_eat_poison_bad, r_eat_poison_good, prob_poison_bad

    def context_bounds(self, horizon):
        return 0.0, 1.0

    def _sample(self, n, rng):
        idx = rng.integers(0, self.codes.shape[0], size=n)
        edible = self.edible[idx]
        bad = rng.uniform(size=n) < self.p_bad
        poison_reward = np.where(bad, self.r_bad, self.r_good)
        poison_mean = self.p_bad * self.r_bad + (1 - self.p_bad) * self.r_good
        rewards = np.stack(
            [np.full(n, self.r_noeat), np.where(edible, self.r_eat_safe, poison_reward)], 1
        )
        expected = np.stack(
            [np.full(n, float(self.r_noeat)), np.where(edible, self.r_eat_safe, poison_mean)], 1
        )
        x = self.encode(self.codes[idx])
        return Trial(x.astype(np.float32), rewards.astype(np.float32), expected.astype(np.float64))


class ArraysProblem(BanditProblem):
    """A stored full-information reward matrix: contexts [N, d], rewards [N, k] and optionally
    expected_rewards [N, k]. Without expected rewards the stored rewards are treated as
    deterministic (exact for jester's ratings; for a noisy matrix the regret is then relative
    to that one stored draw). Rows are shuffled per trial and drawn without replacement.

    ``shuffle_columns`` (jester): concatenate [contexts | rewards] and permute the columns per
    trial, so the context/arm split changes as in the Showdown's jester protocol.
    """

    def __init__(
        self,
        contexts: np.ndarray,
        rewards: np.ndarray,
        expected_rewards: np.ndarray | None = None,
        *,
        shuffle_columns: bool = False,
        name: str = "arrays",
    ) -> None:
        n = contexts.shape[0]
        if contexts.ndim != 2 or rewards.ndim != 2 or rewards.shape[0] != n or n == 0:
            raise ValueError(
                f"contexts {contexts.shape} and rewards {rewards.shape} must be [N, d] and "
                "[N, k] with N > 0"
            )
        if expected_rewards is not None and expected_rewards.shape != rewards.shape:
            raise ValueError(f"expected_rewards {expected_rewards.shape} must be {rewards.shape}")
        if shuffle_columns and expected_rewards is not None:
            raise ValueError("shuffle_columns needs deterministic rewards (no expected_rewards)")
        check_finite(contexts, "contexts")
        check_finite(rewards, "rewards")
        if expected_rewards is not None:
            check_finite(expected_rewards, "expected_rewards")
        self.contexts, self.rewards, self.expected = contexts, rewards, expected_rewards
        self.name, self.shuffle_columns = name, shuffle_columns
        self.num_actions = _check_arms(rewards.shape[1])
        self.context_dim = contexts.shape[1]
        self.max_horizon = self.default_horizon = n

    def context_bounds(self, horizon):
        table = [self.contexts, self.rewards] if self.shuffle_columns else [self.contexts]
        return min(float(a.min()) for a in table), max(float(a.max()) for a in table)

    def _sample(self, n, rng):
        idx = rng.permutation(self.max_horizon)[:n]
        x, r = self.contexts[idx], self.rewards[idx]
        if self.shuffle_columns:
            table = np.concatenate([x, r], axis=1)[:, rng.permutation(x.shape[1] + r.shape[1])]
            x, r = table[:, : self.context_dim], table[:, self.context_dim :]
        expected = r if self.expected is None else self.expected[idx]
        return Trial(x.astype(np.float32), r.astype(np.float32), expected.astype(np.float64))


class FinancialProblem(BanditProblem):
    """The Showdown's financial bandit on the stored daily price changes (d = 21, k = 8):
    per trial, rows are shuffled, beta_a ~ U(-1, 1)^d is scaled to unit norm and the reward is
    x^T beta_a + N(0, sigma_a^2), sigma_a = 0.01 (a + 1), as in the Showdown's code (beta and
    noise redrawn every run). Contexts are the raw price changes (not standardised)."""

    name = "financial"
    num_actions = 8

    def __init__(self, contexts: np.ndarray, num_actions: int = 8) -> None:
        if contexts.ndim != 2 or contexts.shape[0] == 0:
            raise ValueError(f"contexts {contexts.shape} must be [N, d] with N > 0")
        check_finite(contexts, "contexts")
        self.contexts = contexts.astype(np.float64)
        self.num_actions = _check_arms(num_actions)
        self.context_dim = contexts.shape[1]
        self.max_horizon = self.default_horizon = contexts.shape[0]

    def context_bounds(self, horizon):
        return float(self.contexts.min()), float(self.contexts.max())

    def _sample(self, n, rng):
        x = self.contexts[rng.permutation(self.max_horizon)[:n]]
        beta = rng.uniform(-1, 1, (self.context_dim, self.num_actions))
        beta /= np.linalg.norm(beta, axis=0)
        expected = x @ beta
        noise = rng.normal(size=expected.shape) * 0.01 * (np.arange(self.num_actions) + 1)
        return Trial(x.astype(np.float32), (expected + noise).astype(np.float32), expected)
