"""SB3 habits the posterior-sampling DQNs keep: run names, the progress bar."""

from __future__ import annotations

import gymnasium as gym
import pytest

from agents import IVIDQN, BootstrappedDQN, NoisyDQN


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
