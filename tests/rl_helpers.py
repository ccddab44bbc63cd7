"""Settings and environments shared by the DQN-family tests (imported as ``rl_helpers``:
pytest puts ``tests/`` on the path, pyproject's ``pythonpath``)."""

from __future__ import annotations

import gymnasium as gym
from gymnasium.wrappers import FlattenObservation

from ivi_rl import envs  # noqa: F401  (registers ivi_rl/DeepSea-v0)

BSUITE_DQN = dict(
    learning_rate=1e-3,
    buffer_size=10_000,
    learning_starts=128,
    batch_size=128,
    train_freq=1,
    gradient_steps=1,
    target_update_interval=4,
    policy_kwargs=dict(net_arch=[50, 50]),
)
"""bsuite's reference DQN schedule: MLP [50, 50], lr 1e-3, batch 128, an update every step,
target copy every 4 steps."""

ONE_LOWRANK_NETWORK = dict(
    per_action=False,
    stochastic="input_output",
    parametrization="mup",
    input_scale=1.0,
)
"""One low-rank muP network for all actions, input and output layers stochastic: the
structure the tests of layer-level settings index."""


def deep_sea(size: int = 5) -> gym.Env:
    """``ivi_rl/DeepSea-v0`` with its one-hot observation flattened, as the DQN agents take it."""
    return FlattenObservation(gym.make("ivi_rl/DeepSea-v0", size=size))
