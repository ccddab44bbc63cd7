"""Deep Sea (bsuite; Osband et al., Behaviour Suite for RL, ICLR 2020) as a gymnasium env.

An N x N grid, the agent starts top-left and moves down one row per step, so every episode
is exactly N steps. Action ``a`` at cell (row, col) means "right" iff ``a == mapping[row,
col]`` with ``mapping = np.random.RandomState(mapping_seed).binomial(1, 0.5, (N, N))``.
"Right" costs 0.01 / N; choosing right in the last column pays +1, so the optimal return is
0.99, reached only by going right N times. An episode is *bad* if the agent ever chose left
while on the diagonal (still on the optimal path). The observation is the one-hot grid
(all zeros after the last step).

Stochastic variant (``deterministic=False``; bsuite's ``deep_sea_stochastic``): "right"
succeeds with probability 1 - 1/N (the move cost is still charged) and N(0, 1) noise is added
to the reward at the last row in the first or last column. The noise is drawn before the
move, as bsuite does. bsuite's deterministic sweep sets mapping seed 42; its stochastic sweep
keeps its loader's default, 0, so ``ivi_rl/DeepSeaStochastic-v0`` is registered with
``mapping_seed=0`` (``ivi_rl/DeepSea-v0`` with 42, this class's default).

At the end of every episode ``info`` holds bsuite's counters: ``bad_episode``,
``total_bad_episodes`` and ``denoised_return`` (the treasures found so far, noise excluded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

__all__ = [
    "DeepSeaEnv",
    "deep_sea_score",
    "optimal_return",
    "solve_episode",
    "solve_rule",
]


class DeepSeaEnv(gym.Env):
    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        size: int = 10,
        deterministic: bool = True,
        mapping_seed: int = 42,
        randomize_actions: bool = True,
        unscaled_move_cost: float = 0.01,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
            raise ValueError(f"size={size!r} must be an int >= 2")
        if unscaled_move_cost < 0:
            raise ValueError(f"unscaled_move_cost={unscaled_move_cost!r} must be >= 0")
        self.size, self.deterministic = int(size), bool(deterministic)
        self.mapping_seed = int(mapping_seed) if randomize_actions else None
        self.move_cost = unscaled_move_cost / self.size
        if randomize_actions:
            self.mapping = np.random.RandomState(mapping_seed).binomial(1, 0.5, (size, size))
        else:  # bsuite's debug mode: action 1 is always "right"
            self.mapping = np.ones((size, size), dtype=np.int64)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (size, size), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.total_bad_episodes = 0
        self.denoised_return = 0.0
        self.episodes = 0
        self._row = self._col = 0
        self._bad = False
        self._started = False

    @property
    def optimal_return(self) -> float:
        return optimal_return(self.size, self.deterministic)

    def optimal_actions(self) -> np.ndarray:
        """The action meaning 'right' in every cell: following it along the diagonal is optimal."""
        return self.mapping.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._row = self._col = 0
        self._bad = False
        self._started = True
        return self._observation(), {}

    def step(self, action: Any):
        if not self._started:
            raise RuntimeError("step() was called before reset(); call env.reset() first")
        action = _check_binary_action(action)
        right = action == self.mapping[self._row, self._col]
        reward = 0.0
        if right and self._col == self.size - 1:
            reward += 1.0
            self.denoised_return += 1.0
        if (
            not self.deterministic
            and self._row == self.size - 1
            and self._col in (0, self.size - 1)
        ):
            reward += float(self.np_random.normal())
        if right:
            if self.deterministic or self.np_random.uniform() > 1.0 / self.size:
                self._col = min(self._col + 1, self.size - 1)
            reward -= self.move_cost
        else:
            if self._row == self._col:  # left while still on the optimal path
                self._bad = True
            self._col = max(self._col - 1, 0)
        self._row += 1
        terminated = self._row == self.size
        info: dict[str, Any] = {}
        if terminated:
            self._started = False
            self.episodes += 1
            self.total_bad_episodes += int(self._bad)
            info = {
                "bad_episode": self._bad,
                "total_bad_episodes": self.total_bad_episodes,
                "denoised_return": self.denoised_return,
            }
        return self._observation(), reward, terminated, False, info

    def _observation(self) -> np.ndarray:
        obs = np.zeros((self.size, self.size), dtype=np.float32)
        if self._row < self.size:
            obs[self._row, self._col] = 1.0
        return obs


def _check_binary_action(action: Any) -> int:
    value = action.item() if isinstance(action, np.ndarray) and action.size == 1 else action
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"action={action!r} must be an int, 0 or 1")
    if value not in (0, 1):
        raise ValueError(f"action={value} is out of range; accepted: 0 or 1")
    return int(value)


def optimal_return(size: int, deterministic: bool = True) -> float:
    """Expected return of the optimal policy (bsuite's definitions)."""
    if deterministic:
        return 1.0 - 0.01
    return (1 - 1 / size) ** (size - 1) - 0.01


def solve_rule(deterministic: bool = True) -> dict[str, float | int]:
    """bsuite's solve rule as :func:`solve_episode`'s arguments: threshold 0.9 from the first
    episode for Deep Sea, 0.8 counting only episodes >= 100 for the stochastic variant."""
    return (
        {"threshold": 0.9, "min_episode": 1}
        if deterministic
        else {"threshold": 0.8, "min_episode": 100}
    )


def solve_episode(
    bad_episodes: Iterable[bool], threshold: float = 0.9, min_episode: int = 1
) -> int | None:
    """First episode (1-based) at which the fraction of bad episodes so far is below
    ``threshold`` (bsuite: 0.9 deterministic; 0.8 with ``min_episode=100`` stochastic);
    None if never."""
    bad = np.cumsum(np.fromiter(bad_episodes, dtype=np.int64))
    episode = np.arange(1, bad.size + 1)
    solved = (bad / np.maximum(episode, 1) < threshold) & (episode >= min_episode)
    return int(episode[solved][0]) if solved.any() else None


def deep_sea_score(solve_episodes: Mapping[int, int | None], forgiveness: int = 100) -> float:
    """bsuite's score in [0, 1]: the fraction of sizes N solved before 2^N + ``forgiveness``
    episodes (beating what dithering needs)."""
    if not solve_episodes:
        raise ValueError("deep_sea_score needs at least one size")
    beat = [ep is not None and ep < 2**n + forgiveness for n, ep in solve_episodes.items()]
    return float(np.mean(beat))
