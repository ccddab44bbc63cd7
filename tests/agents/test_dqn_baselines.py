"""BootstrappedDQN and NoisyDQN follow SB3's conventions and their exploration schedules."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch
from rl_helpers import deep_sea
from stable_baselines3.common.callbacks import BaseCallback

from ivi_rl import envs  # noqa: F401 - registers ivi_rl/DeepSea-v0
from ivi_rl.agents import BootstrappedDQN, NoisyDQN

SMALL = dict(
    buffer_size=5000, learning_starts=20, batch_size=32, train_freq=1, target_update_interval=4
)


class ActingQ(BaseCallback):
    """Record the acting network's Q-values at one fixed observation after every step."""

    def __init__(self, q_of) -> None:
        super().__init__()
        self.q_of, self.seen = q_of, []

    def _on_step(self) -> bool:
        self.seen.append((bool(self.locals["dones"][0]), self.q_of(self.model)))
        return True


def test_bootstrapped_dqn_holds_one_head_per_episode():
    probe = torch.zeros(1, 25)
    probe[0, 3] = 1.0
    model = BootstrappedDQN("MlpPolicy", deep_sea(), seed=0, **{**SMALL, "learning_starts": 10_000})
    cb = ActingQ(lambda m: int(m.policy.q_net.active[0]))
    model.learn(total_timesteps=5 * 12, callback=cb)
    heads = [[h for _, h in cb.seen[i : i + 5]] for i in range(0, 60, 5)]
    assert all(len(set(h)) == 1 for h in heads)  # constant within each episode
    assert len({h[0] for h in heads}) > 1  # and redrawn across episodes
    q = model.policy.q_net.all_q(probe)
    assert q.shape == (20, 1, 2)  # bsuite's K = 20 members
    prior = model.policy.q_net.prior
    assert not any(p.requires_grad for p in prior.parameters())


def test_bootstrapped_prior_is_frozen_through_training():
    model = BootstrappedDQN("MlpPolicy", deep_sea(), seed=0, **SMALL)
    before = [p.clone() for p in model.policy.q_net.prior.parameters()]
    model.learn(total_timesteps=200)
    for a, b in zip(before, model.policy.q_net.prior.parameters(), strict=True):
        assert torch.equal(a, b)


def test_noisy_dqn_redraws_noise_every_step_and_acts_on_means_when_deterministic():
    model = NoisyDQN("MlpPolicy", deep_sea(), seed=0, **{**SMALL, "learning_starts": 10_000})
    cb = ActingQ(lambda m: m.policy.q_net.noisy_layers()[0].eps_in.clone())
    model.learn(total_timesteps=20, callback=cb)
    noises = [n for _, n in cb.seen]
    assert all(not torch.equal(a, b) for a, b in itertools.pairwise(noises))
    obs = np.eye(25, dtype=np.float32)
    a1, _ = model.predict(obs, deterministic=True)
    a2, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)


@pytest.mark.parametrize("cls", [BootstrappedDQN, NoisyDQN])
def test_save_load_and_spaces(cls, tmp_path):
    model = cls("MlpPolicy", deep_sea(), seed=0, **SMALL)
    model.learn(total_timesteps=100)
    obs = np.eye(25, dtype=np.float32)
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(
        cls.load(tmp_path / "m").predict(obs, deterministic=True)[0], actions
    )
    with pytest.raises(ValueError, match=r"needs a Discrete action space"):
        cls("MlpPolicy", gym.make("Pendulum-v1"))
