"""IVIDQN's draw-coupled TD targets: codes stored per transition, the shift they make, and
sigma = 0 as today's agent."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.wrappers import FlattenObservation
from stable_baselines3.common.buffers import ReplayBuffer

import ivi_rl
from ivi_rl import envs  # noqa: F401  (registers ivi_rl/DeepSea-v0)
from ivi_rl.agents import IVIDQN
from ivi_rl.agents.sb3.buffers import CodedReplayBuffer

SMALL = dict(
    learning_rate=1e-3,
    buffer_size=1_000,
    learning_starts=32,
    batch_size=32,
    train_freq=1,
    target_update_interval=4,
    output_noise="sampled",
    policy_kwargs=dict(net_arch=[16]),
)


def deep_sea(size: int):
    return FlattenObservation(gym.make("ivi_rl/DeepSea-v0", size=size))


def _buffer(kind, n_envs: int = 2, size: int = 200):
    box = spaces.Box(-1.0, 1.0, (3,), np.float32)
    return kind(size, box, spaces.Discrete(2), device="cpu", n_envs=n_envs)


def _fill(buffer, steps: int) -> None:
    """Transitions whose reward is a unique id: step * n_envs + env."""
    n = buffer.n_envs
    for step in range(steps):
        obs = np.full((n, 3), step, np.float32)
        ids = np.arange(step * n, (step + 1) * n, dtype=np.float32)
        buffer.add(obs, obs, np.zeros((n, 1)), ids, np.zeros(n), [{}] * n)


def test_a_minibatch_returns_the_code_stored_with_each_transition():
    buffer = _buffer(CodedReplayBuffer)
    buffer.set_codes(5, seed=0)
    _fill(buffer, 40)
    by_id = buffer.codes.reshape(-1, 5)[: 40 * 2]  # rows in (step, env) order = reward ids
    np.random.seed(3)
    batch = buffer.sample(100)
    ids = batch.rewards[:, 0].long().numpy()
    np.testing.assert_array_equal(batch.codes.numpy(), by_id[ids])


def test_sampling_leaves_numpys_generator_where_sb3s_buffer_does():
    """Same transitions sampled and the same global generator state after, so adding codes
    does not change which minibatches a run trains on."""
    coded, plain = _buffer(CodedReplayBuffer), _buffer(ReplayBuffer)
    coded.set_codes(5, seed=0)
    _fill(coded, 40)
    _fill(plain, 40)
    np.random.seed(7)
    a = coded.sample(50)
    state_a = np.random.get_state()[1]
    np.random.seed(7)
    b = plain.sample(50)
    np.testing.assert_array_equal(a.rewards.numpy(), b.rewards.numpy())
    np.testing.assert_array_equal(state_a, np.random.get_state()[1])


def test_codes_have_covariance_identity_over_r_and_are_seeded():
    """E[c c^T] = I / R: mean square R * c_i^2 within 3% over 1,000 x 50 entries (its sd is
    sqrt(2 / 50,000) = 0.6%); off-diagonal mean within 0.01 (sd about 1/sqrt(1000) / 50)."""
    buffers = []
    for _ in range(2):
        buffer = _buffer(CodedReplayBuffer, n_envs=1, size=1000)
        buffer.set_codes(50, seed=4)
        _fill(buffer, 1000)
        buffers.append(buffer.codes[:, 0])
    np.testing.assert_array_equal(*buffers)
    codes = buffers[0].astype(np.float64)
    second = 50 * codes.T @ codes / len(codes)
    assert abs(np.diag(second).mean() - 1) < 0.03
    assert abs(second[~np.eye(50, dtype=bool)].mean()) < 0.01


def test_add_before_set_codes_is_named():
    with pytest.raises(RuntimeError, match=r"add before set_codes"):
        _fill(_buffer(CodedReplayBuffer), 1)


def test_target_is_shifted_by_sigma_times_the_code_against_the_draw():
    model = IVIDQN("MlpPolicy", deep_sea(5), seed=0, target_noise=0.5, **SMALL)
    model.learn(total_timesteps=5 * 12)
    batch = model.replay_buffer.sample(32)
    noise = model.policy.q_net.q_net.sample_noise(generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        shifted = model._td_target(batch, noise)
        model.target_noise = 0.0
        plain = model._td_target(batch, noise)
    z = torch.cat(noise.tensors)
    assert z.shape == (model.policy.q_net.q_net.noise_dim,) == (batch.codes.shape[1],)
    torch.testing.assert_close(shifted - plain, 0.5 * (batch.codes @ z)[:, None])


def test_sigma_zero_is_todays_agent_bit_for_bit():
    runs = []
    for kwargs in ({}, {"target_noise": 0.0}):
        model = IVIDQN("MlpPolicy", deep_sea(5), seed=2, **SMALL, **kwargs)
        model.learn(total_timesteps=5 * 30)
        assert type(model.replay_buffer) is ReplayBuffer
        runs.append(model.policy.state_dict())
    for name, value in runs[0].items():
        assert torch.equal(value, runs[1][name]), name


def test_codes_survive_saving_and_loading_the_model_and_its_buffer(tmp_path):
    model = IVIDQN("MlpPolicy", deep_sea(5), seed=0, target_noise=0.3, **SMALL)
    model.learn(total_timesteps=5 * 12)
    model.save(tmp_path / "m")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = IVIDQN.load(tmp_path / "m", env=deep_sea(5))
    assert loaded.target_noise == 0.3
    loaded.load_replay_buffer(tmp_path / "buffer")
    np.testing.assert_array_equal(loaded.replay_buffer.codes, model.replay_buffer.codes)
    # the next codes continue the saved generator's stream
    model.learn(total_timesteps=5, reset_num_timesteps=False)
    loaded.learn(total_timesteps=5, reset_num_timesteps=False)
    np.testing.assert_array_equal(loaded.replay_buffer.codes, model.replay_buffer.codes)


def test_loading_a_buffer_without_codes_is_named(tmp_path):
    plain = IVIDQN("MlpPolicy", deep_sea(5), seed=0, **SMALL)
    plain.learn(total_timesteps=5 * 8)
    plain.save_replay_buffer(tmp_path / "plain")
    model = IVIDQN("MlpPolicy", deep_sea(5), seed=0, target_noise=0.3, **SMALL)
    with pytest.raises(ValueError, match=r"holds no perturbation codes of size \d+ \(found None\)"):
        model.load_replay_buffer(tmp_path / "plain")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"target_noise": -1.0}, r"target_noise=-1.0 is not accepted; accepted: a finite number"),
        ({"target_noise": float("nan")}, r"target_noise=nan is not accepted"),
        ({"target_noise": True}, r"target_noise=True is not accepted"),
        ({"target_noise": "big"}, r"target_noise='big' is not accepted"),
        (
            {"target_noise": 0.1, "output_noise": "marginalized"},
            r"target_noise=0.1 needs output_noise='sampled'.*got output_noise='marginalized'",
        ),
        (
            {"target_noise": 0.1, "output_noise": "sampled", "n_steps": 3},
            r"target_noise=0.1 needs one-step returns; got n_steps=3",
        ),
        (
            {"target_noise": 0.1, "output_noise": "sampled", "replay_buffer_class": ReplayBuffer},
            r"stores codes in a CodedReplayBuffer; got replay_buffer_class=ReplayBuffer",
        ),
    ],
)
def test_bad_target_noise_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IVIDQN("MlpPolicy", deep_sea(5), **kwargs)


def test_perturbation_shift_is_each_codes_product_with_each_draw():
    net = ivi_rl.make_mlp(3, 2, [4], cov="lowrank", rank=2)
    noise = net.sample_noise((3,), torch.Generator().manual_seed(0))
    codes = torch.randn(5, net.noise_dim, generator=torch.Generator().manual_seed(1))
    z = torch.cat(noise.tensors, -1)
    shift = ivi_rl.perturbation_shift(noise, codes)
    assert shift.shape == (3, 5)
    torch.testing.assert_close(shift, torch.einsum("sr,nr->sn", z, codes))
    with pytest.raises(ValueError, match=r"codes has shape \(5, 2\); expected \[\*batch, R\]"):
        ivi_rl.perturbation_shift(noise, codes[:, :2])
