"""Bandit problems: each samples whole trials (:class:`~envs.trial.Trial`) from a seed.

A problem knows its number of arms, its context dimension and its default horizon (the
Showdown's n). ``sample_trial(horizon, seed)`` draws everything random about one trial at
once (context order, reward noise, per-trial parameters), vectorised, so a trial is a pure
function of (problem settings, horizon, seed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ivi_rl.checks import check_choice

from .trial import Trial

__all__ = [
    "BanditProblem",
    "LinearProblem",
    "NeuralUCBProblem",
    "SparseLinearProblem",
    "WheelProblem",
    "check_horizon",
]


def check_horizon(horizon: object, maximum: int | None = None) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
        raise TypeError(f"horizon={horizon!r} must be a positive int")
    if horizon < 1:
        raise ValueError(f"horizon={horizon!r} must be a positive int")
    if maximum is not None and horizon > maximum:
        raise ValueError(
            f"horizon={horizon} exceeds the {maximum} rows this dataset can draw without "
            f"replacement; use horizon <= {maximum}"
        )
    return int(horizon)


class BanditProblem(ABC):
    """A contextual bandit from which trials are drawn."""

    name: str
    num_actions: int
    context_dim: int
    default_horizon: int
    max_horizon: int | None = None
    """Rows available when a trial draws without replacement; None if unlimited."""

    def sample_trial(
        self, horizon: int | None = None, seed: int | np.random.Generator | None = None
    ) -> Trial:
        """Draw one trial of ``horizon`` steps (default: the Showdown's n for this dataset)."""
        n = check_horizon(self.default_horizon if horizon is None else horizon, self.max_horizon)
        return self._sample(n, np.random.default_rng(seed))

    @abstractmethod
    def _sample(self, n: int, rng: np.random.Generator) -> Trial: ...

    def context_bounds(self, horizon: int) -> tuple[float, float]:
        """Bounds every context entry of a trial of ``horizon`` steps lies in."""
        return -np.inf, np.inf

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, num_actions={self.num_actions}, "
            f"context_dim={self.context_dim})"
        )


def _trial(contexts, expected, noise_std, rng) -> Trial:
    """Realised rewards = expected + Gaussian noise (std per arm or scalar)."""
    noise = rng.normal(size=expected.shape) * np.asarray(noise_std, dtype=np.float64)
    return Trial(contexts.astype(np.float32), (expected + noise).astype(np.float32), expected)


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name}={value!r} must be a positive number")
    return float(value)


class WheelProblem(BanditProblem):
    """The Showdown's wheel bandit.

    Contexts are uniform on the unit disc, k = 5 arms. Arm 4 always pays N(mu1, sigma^2)
    (the released code puts the constant 1.2 arm last). If |x| <= delta the other four pay
    N(mu2, sigma^2); outside, the arm of x's quadrant (0: x>0,y>0; 1: x>0,y<=0; 2: x<=0,y>0;
    3: x<=0,y<=0) pays N(mu3, sigma^2). Deviation from the released code, following the paper:
    one noise std sigma = 0.01 for every arm (the code uses 0.05 for the small rewards).
    Uniform's expected regret per step is 0.16 delta^2 + 39.16 (1 - delta^2).
    """

    name = "wheel"
    num_actions = 5
    context_dim = 2
    default_horizon = 80_000

    def __init__(
        self,
        delta: float = 0.95,
        mu1: float = 1.2,
        mu2: float = 1.0,
        mu3: float = 50.0,
        sigma: float = 0.01,
    ) -> None:
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
            raise ValueError(f"delta={delta!r} must be in the open interval (0, 1)")
        self.delta, self.mu1, self.mu2, self.mu3 = float(delta), mu1, mu2, mu3
        self.sigma = _positive(sigma, "sigma")

    def context_bounds(self, horizon):
        return -1.0, 1.0

    def _sample(self, n, rng):
        # Uniform on the disc: radius sqrt(U), angle U(0, 2 pi) (same law as rejection sampling).
        radius = np.sqrt(rng.uniform(size=n))
        angle = rng.uniform(0, 2 * np.pi, size=n)
        x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        expected = np.full((n, 5), float(self.mu2))
        expected[:, 4] = self.mu1
        outer = radius > self.delta
        quadrant = np.where(x[:, 0] > 0, np.where(x[:, 1] > 0, 0, 1), np.where(x[:, 1] > 0, 2, 3))
        expected[outer, quadrant[outer]] = self.mu3
        return _trial(x, expected, self.sigma, rng)


class LinearProblem(BanditProblem):
    """The Showdown's linear bandit: x ~ N(0, I_d), beta_a ~ U(-1, 1)^d scaled to unit norm,
    reward x^T beta_a + N(0, sigma_a^2) with sigma_a = 0.01 (a + 1). beta is redrawn per trial."""

    name = "linear"
    default_horizon = 10_000

    def __init__(self, context_dim: int = 10, num_actions: int = 8) -> None:
        self.context_dim = _check_dim(context_dim, "context_dim")
        self.num_actions = _check_arms(num_actions)

    def _betas(self, rng: np.random.Generator) -> np.ndarray:
        beta = rng.uniform(-1, 1, (self.context_dim, self.num_actions))
        return beta / np.linalg.norm(beta, axis=0)

    def _sample(self, n, rng):
        beta = self._betas(rng)
        x = rng.normal(size=(n, self.context_dim))
        noise_std = 0.01 * (np.arange(self.num_actions) + 1)
        return _trial(x, x @ beta, noise_std, rng)


class SparseLinearProblem(LinearProblem):
    """The Showdown's sparse linear bandit: as :class:`LinearProblem` but each beta_a has only
    ``sparse_dim`` non-zero coordinates (chosen per arm and trial)."""

    name = "sparse_linear"

    def __init__(self, context_dim: int = 10, num_actions: int = 7, sparse_dim: int = 3) -> None:
        super().__init__(context_dim, num_actions)
        if isinstance(sparse_dim, bool) or not isinstance(sparse_dim, int):
            raise TypeError(f"sparse_dim={sparse_dim!r} must be an int")
        if not 1 <= sparse_dim <= context_dim:
            raise ValueError(f"sparse_dim={sparse_dim} must be in [1, context_dim={context_dim}]")
        self.sparse_dim = sparse_dim

    def _betas(self, rng):
        beta = rng.uniform(-1, 1, (self.context_dim, self.num_actions))
        mask = np.zeros_like(beta)
        for a in range(self.num_actions):
            mask[rng.choice(self.context_dim, self.sparse_dim, replace=False), a] = 1.0
        beta *= mask
        return beta / np.linalg.norm(beta, axis=0)


class NeuralUCBProblem(BanditProblem):
    """Synthetic rewards of NeuralUCB (Zhou, Li, Gu, ICML 2020), section 7.1.

    Each of the k arms has its own context x_a, uniform on the unit sphere in R^d; the
    observation is their concatenation [k * d]. Reward h(x_a) + N(0, noise_std^2) with
    'quadratic': 10 (x^T a)^2, 'quadratic_form': x^T A^T A x, 'cosine': cos(3 x^T a); a is
    uniform on the unit sphere and A has N(0, 1) entries, both redrawn per trial.
    """

    name = "neural_ucb"
    default_horizon = 10_000
    REWARDS = ("quadratic", "quadratic_form", "cosine")

    def __init__(
        self,
        reward: str = "quadratic",
        arm_dim: int = 20,
        num_actions: int = 4,
        noise_std: float = 1.0,
    ) -> None:
        check_choice("reward", reward, self.REWARDS)
        self.reward, self.arm_dim = reward, _check_dim(arm_dim, "arm_dim")
        self.num_actions = _check_arms(num_actions)
        self.context_dim = self.arm_dim * self.num_actions
        self.noise_std = _positive(noise_std, "noise_std")

    def context_bounds(self, horizon):
        return -1.0, 1.0

    def _sample(self, n, rng):
        d, k = self.arm_dim, self.num_actions
        a = rng.normal(size=d)
        a /= np.linalg.norm(a)
        big_a = rng.normal(size=(d, d))
        x = rng.normal(size=(n, k, d))
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        if self.reward == "quadratic":
            expected = 10.0 * (x @ a) ** 2
        elif self.reward == "quadratic_form":
            expected = np.sum((x @ big_a.T) ** 2, axis=-1)  # |A x|^2 = x^T A^T A x
        else:
            expected = np.cos(3.0 * (x @ a))
        return _trial(x.reshape(n, k * d), expected, self.noise_std, rng)


def _check_arms(num_actions: object) -> int:
    if isinstance(num_actions, bool) or not isinstance(num_actions, int) or num_actions < 2:
        raise ValueError(f"num_actions={num_actions!r} must be an int >= 2")
    return num_actions


def _check_dim(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")
    return value
