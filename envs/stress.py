"""Synthetic bandits built to break a learning rate: data scales a real table can have.

Every kind is a classification bandit (reward 1 for the true class, 0 otherwise; k arms, one
class holding about half the rows, as occupations or cover types do) whose contexts or
rewards take a scale that no hand-chosen step size is safe against:

- ``rare_category``: one-hot columns in which several categories have probability 1/2,000,
  z-scored over the trial's rows as the Showdown's loaders do, so a category seen once in
  n rows becomes an entry of about sqrt(n) (45 at n = 2,000) in a column of std 1;
- ``feature_scale``: raw numeric features of scale 1 next to an informative one of scale 1e3;
- ``degenerate_columns``: raw features with two constant columns and one informative column
  repeated 20 times (the second moment's top eigenvalue is about 20 times the others);
- ``reward_scale``: z-scored contexts, rewards of 1e3 for the true class.

The class function (a random linear score of the numeric features plus a random value per
category) is fixed by ``structure_seed``; each trial draws its n rows from its own seed.
"""

from __future__ import annotations

import numpy as np

from ivi_rl.checks import check_choice

from .problems import BanditProblem, _check_arms
from .tabular import _zscore
from .trial import Trial

__all__ = ["STRESS_KINDS", "StressProblem"]

STRESS_KINDS = ("rare_category", "feature_scale", "degenerate_columns", "reward_scale")
_NUMERIC = 6
_CATEGORIES = (12, 12, 12, 40)
"""Categories per one-hot column; the last 5 of every column have probability 1/2,000 each."""
_RARE, _RARE_P = 5, 1 / 2000
_COPIES = 20


class StressProblem(BanditProblem):
    """A classification bandit whose contexts or rewards take an extreme scale (see the
    module docstring for the kinds). ``default_horizon`` is 2,000, the horizon the rare
    categories are sized for; any horizon works (rows are drawn per trial)."""

    default_horizon = 2000

    def __init__(self, kind: str, num_actions: int = 12, structure_seed: int = 0) -> None:
        check_choice("kind", kind, STRESS_KINDS)
        self.kind, self.name = kind, f"stress_{kind}"
        self.num_actions = _check_arms(num_actions)
        rng = np.random.default_rng(structure_seed)
        self._numeric_weights = rng.normal(size=(_NUMERIC, self.num_actions))
        self._category_values = [rng.normal(size=(c, self.num_actions)) for c in _CATEGORIES]
        self._class_bias = np.zeros(self.num_actions)
        self._class_bias[0] = 3.5  # one dominant class, about half the rows
        self.context_dim = self._context_dim()

    def _context_dim(self) -> int:
        if self.kind in ("rare_category", "reward_scale"):
            return _NUMERIC + sum(_CATEGORIES)
        if self.kind == "feature_scale":
            return _NUMERIC
        return _NUMERIC + 2 + _COPIES  # degenerate_columns

    def _sample(self, n, rng):
        numeric = rng.normal(size=(n, _NUMERIC))
        codes = [_draw_categories(rng, c, n) for c in _CATEGORIES]
        score = numeric @ self._numeric_weights + self._class_bias
        score = score + sum(v[c] for v, c in zip(self._category_values, codes, strict=True))
        labels = score.argmax(1)
        expected = np.zeros((n, self.num_actions))
        expected[np.arange(n), labels] = 1.0
        x = self._contexts(numeric, codes)
        if self.kind == "reward_scale":
            expected *= 1e3
        return Trial(x.astype(np.float32), expected.astype(np.float32), expected)

    def _contexts(self, numeric: np.ndarray, codes: list[np.ndarray]) -> np.ndarray:
        if self.kind == "feature_scale":
            return numeric * np.array([1e3, *[1.0] * (_NUMERIC - 1)])
        if self.kind == "degenerate_columns":
            n = numeric.shape[0]
            constant = np.tile([5.0, 0.0], (n, 1))
            return np.concatenate([numeric, constant, np.repeat(numeric[:, :1], _COPIES, 1)], 1)
        onehot = [np.eye(c)[k] for c, k in zip(_CATEGORIES, codes, strict=True)]
        return _zscore(np.concatenate([numeric, *onehot], 1))


def _draw_categories(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """Category codes: the first ``size - 5`` categories share what the 5 rare ones
    (probability 1/2,000 each) leave, in proportion 1 / (i + 1)."""
    common = 1.0 / np.arange(1, size - _RARE + 1)
    p = np.concatenate([common / common.sum() * (1 - _RARE * _RARE_P), [_RARE_P] * _RARE])
    return rng.choice(size, size=n, p=p)
