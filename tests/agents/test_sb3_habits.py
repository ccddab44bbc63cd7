"""SB3 habits the posterior-sampling DQNs keep: run names, the progress bar."""

from __future__ import annotations

import gymnasium as gym
import pytest

from ivi_rl.agents import IVIDQN, BootstrappedDQN, NoisyDQN


@pytest.mark.parametrize("cls", [IVIDQN, BootstrappedDQN, NoisyDQN])
def test_tensorboard_runs_are_named_after_the_algorithm(tmp_path, cls):
    model = cls(
        "MlpPolicy",
        gym.make("CartPole-v1"),
        learning_starts=10,
        seed=0,
        tensorboard_log=str(tmp_path),
    )
    model.learn(20)
    model.learn(20, tb_log_name="mine")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{cls.__name__}_1", "mine_1"]


def test_progress_bar_works_as_in_sb3():
    model = IVIDQN("MlpPolicy", gym.make("CartPole-v1"), learning_starts=10, seed=0)
    model.learn(30, progress_bar=True)
    assert model.num_timesteps >= 30  # it used to fail: rich was not installed


@pytest.mark.parametrize("cls", [IVIDQN, BootstrappedDQN, NoisyDQN])
def test_discrete_observations_are_one_hot_encoded_as_sb3_does(cls):
    """FrozenLake's observation is a Discrete(16) cell index: SB3's preprocessing one-hot
    encodes it, so the Q-network sees 16 inputs (it used to be refused)."""
    model = cls("MlpPolicy", gym.make("FrozenLake-v1"), learning_starts=10, batch_size=8, seed=0)
    model.learn(40)
    q_input = next(model.policy.q_net.parameters())
    assert q_input.shape[-1] == 16 or 16 in q_input.shape
    action, _ = model.predict(3, deterministic=True)
    assert 0 <= int(action) < 4
