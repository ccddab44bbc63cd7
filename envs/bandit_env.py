"""A contextual bandit as a ``gymnasium.Env``: one episode is one trial of horizon n.

Observation: the context of the current step. Action: an arm, ``Discrete(k)``. Reward: that
arm's realised reward. After n steps the episode is truncated. ``info`` carries, for the step
just taken: ``expected_reward`` (of the chosen arm), ``optimal_reward`` (expected, best arm),
``regret`` (their difference: exact, counterfactual expected regret) and ``optimal_action``.
``reset(seed=...)`` draws the whole trial (context order, reward noise, per-trial parameters),
available afterwards as ``env.unwrapped.trial`` for agents that want arrays, not steps.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from .problems import BanditProblem, check_horizon
from .registry import make_problem
from .trial import Trial

__all__ = ["ContextualBanditEnv"]


class ContextualBanditEnv(gym.Env):
    """Showdown-style contextual bandit.

    Args:
        dataset: a dataset name (see ``envs.DATASETS``) or a :class:`BanditProblem`.
        horizon: steps per episode (default: the dataset's Showdown n).
        **settings: dataset settings, e.g. ``delta=0.9`` for the wheel or ``data_dir=...``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self, dataset: str | BanditProblem, horizon: int | None = None, **settings: Any
    ) -> None:
        if isinstance(dataset, BanditProblem):
            if settings:
                raise TypeError(f"settings {sorted(settings)} need a dataset name, not a problem")
            self.problem = dataset
        else:
            self.problem = make_problem(dataset, **settings)
        limit = self.problem.max_horizon
        horizon = self.problem.default_horizon if horizon is None else horizon
        self.horizon = check_horizon(horizon, limit)
        self.action_space = gym.spaces.Discrete(self.problem.num_actions)
        low, high = self.problem.context_bounds(self.horizon)
        self.observation_space = gym.spaces.Box(
            np.float32(low), np.float32(high), shape=(self.problem.context_dim,), dtype=np.float32
        )
        self.trial: Trial | None = None
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        # The trial's own generator is drawn from the env's seeded np_random, so a seed fixes
        # the trial and later unseeded resets give fresh, reproducible trials.
        self.trial = self.problem.sample_trial(self.horizon, self.np_random.integers(2**63))
        self._t = 0
        return self.trial.contexts[0], {"optimal_action": int(self.trial.optimal_actions[0])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.trial is None:
            raise RuntimeError("step() was called before reset(); call env.reset() first")
        if self._t >= self.horizon:
            raise RuntimeError("the episode is over (truncated); call env.reset() first")
        arm = self._check_action(action)
        t, trial = self._t, self.trial
        expected = trial.expected_rewards[t]
        best = int(expected.argmax())
        info = {
            "expected_reward": float(expected[arm]),
            "optimal_reward": float(expected[best]),
            "regret": float(expected[best] - expected[arm]),
            "optimal_action": best,
        }
        self._t += 1
        truncated = self._t == self.horizon
        obs = trial.contexts[self._t if not truncated else t]
        return obs, float(trial.rewards[t, arm]), False, truncated, info

    def _check_action(self, action: Any) -> int:
        value = action.item() if isinstance(action, np.ndarray) and action.size == 1 else action
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(
                f"action={action!r} must be an int arm index in [0, {self.problem.num_actions - 1}]"
            )
        if not 0 <= value < self.problem.num_actions:
            raise ValueError(
                f"action={value} is out of range; accepted: 0..{self.problem.num_actions - 1}"
            )
        return int(value)
