"""The IVIDQN variant of ivi_rl.contrib: draw-coupled TD targets (codes stored per
transition, the shift they make), other targets and losses, random prior means, frozen
layers, Adam; with none of them set it is IVIDQN bit for bit."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from rl_helpers import BSUITE_DQN, ONE_LOWRANK_NETWORK, deep_sea
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import ivi_rl
from ivi_rl import envs  # noqa: F401  (registers ivi_rl/DeepSea-v0)
from ivi_rl.agents import IVIDQN
from ivi_rl.contrib.coded_buffer import CodedReplayBuffer
from ivi_rl.contrib.noise_aware import perturbation_shift
from ivi_rl.contrib.sb3 import VariantIVIDQN
from ivi_rl.pipeline.rl_config import agent_on, build_agent, load_rl_config, make_env

RANDOM_PRIOR_NETWORK = {**ONE_LOWRANK_NETWORK, "prior_mean": "random"}
"""The layer-level tests' structure with random prior means."""
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
    model = VariantIVIDQN("MlpPolicy", deep_sea(5), seed=0, target_noise=0.5, **SMALL)
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


def test_with_nothing_set_the_variant_is_ividqn_bit_for_bit():
    runs = []
    for cls, kwargs in ((IVIDQN, {}), (VariantIVIDQN, {"target_noise": 0.0})):
        model = cls("MlpPolicy", deep_sea(5), seed=2, **SMALL, **kwargs)
        model.learn(total_timesteps=5 * 30)
        assert type(model.replay_buffer) is ReplayBuffer
        runs.append(model.policy.state_dict())
    for name, value in runs[0].items():
        assert torch.equal(value, runs[1][name]), name


def test_codes_survive_saving_and_loading_the_model_and_its_buffer(tmp_path):
    model = VariantIVIDQN("MlpPolicy", deep_sea(5), seed=0, target_noise=0.3, **SMALL)
    model.learn(total_timesteps=5 * 12)
    model.save(tmp_path / "m")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = VariantIVIDQN.load(tmp_path / "m", env=deep_sea(5))
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
    model = VariantIVIDQN("MlpPolicy", deep_sea(5), seed=0, target_noise=0.3, **SMALL)
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
        VariantIVIDQN("MlpPolicy", deep_sea(5), **kwargs)


def test_perturbation_shift_is_each_codes_product_with_each_draw():
    net = ivi_rl.make_mlp(3, 2, [4], cov="lowrank", rank=2)
    noise = net.sample_noise((3,), torch.Generator().manual_seed(0))
    codes = torch.randn(5, net.noise_dim, generator=torch.Generator().manual_seed(1))
    z = torch.cat(noise.tensors, -1)
    shift = perturbation_shift(noise, codes)
    assert shift.shape == (3, 5)
    torch.testing.assert_close(shift, torch.einsum("sr,nr->sn", z, codes))
    with pytest.raises(ValueError, match=r"codes has shape \(5, 2\); expected \[\*batch, R\]"):
        perturbation_shift(noise, codes[:, :2])


@pytest.mark.parametrize(
    ("frozen", "trained"),
    [
        ("output", {"layers.0.weight", "layers.0.cov.weight_scale", "layers.1.weight"}),
        ("hidden_output", {"layers.0.weight", "layers.0.cov.weight_scale"}),
        ("features", {"layers.2.weight", "layers.2.cov.weight_scale"}),
    ],
)
def test_frozen_layers_keep_their_prior_draw_and_the_rest_trains(frozen, trained, tmp_path):
    """Frozen layers (mean and covariance) are in no optimizer group and stay at their prior
    draw through training while every other parameter changes; bias=False builds the layers
    without biases; both survive save / load."""
    kwargs = dict(
        net_arch=[50, 50], cov="diagonal", bias=False, frozen=frozen, **RANDOM_PRIOR_NETWORK
    )
    model = VariantIVIDQN(
        "MlpPolicy",
        deep_sea(5),
        seed=0,
        **{**BSUITE_DQN, "learning_starts": 20, "policy_kwargs": kwargs},
    )
    net = model.policy.q_net.q_net
    assert all(layer.bias is None for layer in net.layers)
    names = {n for g in model.policy.optimizer.param_groups for n in g["names"]}
    assert names == {"q_net." + n for n in trained}
    before = {k: v.clone() for k, v in net.named_parameters()}
    model.learn(total_timesteps=150)
    for name, value in net.named_parameters():
        assert (not torch.equal(value, before[name])) == (name in trained), name
    model.save(tmp_path / "model")
    loaded = VariantIVIDQN.load(tmp_path / "model").policy.q_net
    assert loaded.settings.frozen == frozen
    assert {n for n, p in loaded.q_net.named_parameters() if p.requires_grad} == trained
    assert loaded.q_net.layers[0].bias is None


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("frozen", "input", "none, output, hidden_output, features"),
        ("prior_mean", "ones", "zero, random"),
    ],
)
def test_bad_structure_settings_are_named(name, value, accepted):
    with pytest.raises(
        ValueError, match=rf"{name}='{value}' is not accepted; accepted: {accepted}"
    ):
        VariantIVIDQN("MlpPolicy", deep_sea(5), policy_kwargs={name: value})


def test_hidden_output_frozen_keeps_never_visited_cells_exactly_at_the_prior():
    """With every layer but the input layer frozen and no biases, a never-visited cell's Q
    under any draw is exactly its prior value (its one-hot input column gets no gradient:
    IVI's null space); when the shared layers train (frozen='none'), it is not."""
    changed = {}
    for frozen in ("hidden_output", "none"):
        kwargs = dict(net_arch=[50, 50], cov="lowrank", rank=4, bias=False, frozen=frozen)
        model = VariantIVIDQN(
            "MlpPolicy",
            deep_sea(8),
            seed=0,
            **{**BSUITE_DQN, "learning_starts": 20, "policy_kwargs": kwargs},
        )
        cells = torch.eye(64)
        noise = model.policy.q_net.q_net.sample_noise((16,), seed=5)
        before = model.policy.q_net.q_net(cells, noise)
        model.learn(total_timesteps=8 * 30)
        buffer = model.replay_buffer
        seen = np.concatenate(
            [buffer.observations[: buffer.pos, 0], buffer.next_observations[: buffer.pos, 0]]
        ).sum(0)
        never = torch.as_tensor(seen == 0)
        assert 0 < never.sum() < 64
        after = model.policy.q_net.q_net(cells, noise)
        if frozen == "hidden_output":
            torch.testing.assert_close(after[:, never], before[:, never], rtol=0, atol=0)
        changed[frozen] = (after[:, never] - before[:, never]).abs().max().item()
    assert changed["none"] > 1e-4


def test_zero_prior_mean_starts_the_stochastic_layers_means_at_zero(tmp_path):
    """prior_mean='zero': the stochastic layers' weight means start at 0 in the online and
    the target network, their covariance and the deterministic hidden layer as with
    'random' (same seed); the setting survives save / load."""
    nets = {}
    for prior_mean in ("random", "zero"):
        kwargs = dict(
            net_arch=[20, 20], cov="diagonal", **{**RANDOM_PRIOR_NETWORK, "prior_mean": prior_mean}
        )
        model = VariantIVIDQN(
            "MlpPolicy", deep_sea(5), seed=0, **{**BSUITE_DQN, "policy_kwargs": kwargs}
        )
        nets[prior_mean] = model.policy
    random, zero = (nets[k].q_net.q_net.layers for k in ("random", "zero"))
    for layer_random, layer_zero in zip(random, zero, strict=True):
        if layer_zero.is_stochastic:
            assert not layer_zero.weight.any()
            torch.testing.assert_close(layer_zero.cov.weight_scale, layer_random.cov.weight_scale)
        else:
            torch.testing.assert_close(layer_zero.weight, layer_random.weight)
    assert [layer.is_stochastic for layer in zero] == [True, False, True]
    target = nets["zero"].q_net_target.q_net.layers
    assert not target[0].weight.any() and not target[2].weight.any()
    model.save(tmp_path / "model")
    assert VariantIVIDQN.load(tmp_path / "model").policy.q_net.settings.prior_mean == "zero"


def test_zero_prior_mean_without_stochastic_layers_is_named():
    kwargs = dict(net_arch=[8], stochastic="none", cov=None, prior_mean="zero")
    with pytest.raises(ValueError, match=r"prior_mean='zero' needs stochastic layers.*'none'"):
        VariantIVIDQN("MlpPolicy", deep_sea(5), policy_kwargs=kwargs)


def test_zero_prior_mean_centres_the_draws_preference_at_every_state():
    """The share of 400 prior draws that prefer action 0, per Deep Sea N = 8 state, for Q
    linear in the one-hot cell. Zero means: 0.5 at every state in expectation; the binomial
    sd of a share of 400 is 0.025, so all 64 lie in [0.4, 0.6] (4 sd). A random mean shared
    by the draws moves a state's share to Phi(u), u ~ N(0, 1) over states (the mean's and the
    covariance's variances are equal), outside [0.2, 0.8] for 40% of states in expectation;
    more than a fifth are asserted (binomial over 64 states: 4 sd below 0.4)."""
    shares = {}
    for prior_mean in ("random", "zero"):
        kwargs = dict(net_arch=[], cov="diagonal", bias=False, prior_mean=prior_mean)
        model = VariantIVIDQN(
            "MlpPolicy", deep_sea(8), seed=0, **{**BSUITE_DQN, "policy_kwargs": kwargs}
        )
        q = model.policy.q_net.sampled_q(
            torch.eye(64), (400,), generator=torch.Generator().manual_seed(1)
        )
        shares[prior_mean] = (q[..., 0] > q[..., 1]).float().mean(0)
    assert ((shares["zero"] - 0.5).abs() <= 0.1).all()
    assert ((shares["random"] - 0.5).abs() > 0.3).float().mean() > 0.2


def test_freezing_needs_hidden_layers():
    for frozen in ("output", "hidden_output"):
        with pytest.raises(ValueError, match=rf"frozen='{frozen}' needs hidden layers.*\[\]"):
            VariantIVIDQN(
                "MlpPolicy", deep_sea(5), policy_kwargs={"net_arch": [], "frozen": frozen}
            )


def test_variant_arguments_are_checked():
    with pytest.raises(
        ValueError, match=r"target='online' is not accepted; accepted: same_draw, mean, independent"
    ):
        VariantIVIDQN("MlpPolicy", deep_sea(5), target="online")
    with pytest.raises(ValueError, match=r"output_noise='marginalized' needs loss='mse'.*'huber'"):
        VariantIVIDQN("MlpPolicy", deep_sea(5), output_noise="marginalized", loss="huber")
    with pytest.raises(ValueError, match=r"optimizer_class=RMSprop is not accepted; accepted: "):
        VariantIVIDQN(
            "MlpPolicy", deep_sea(5), policy_kwargs=dict(optimizer_class=torch.optim.RMSprop)
        )
    adam = VariantIVIDQN(
        "MlpPolicy", deep_sea(5), policy_kwargs=dict(optimizer_class=torch.optim.Adam)
    )
    assert isinstance(adam.policy.optimizer, torch.optim.Adam)


@pytest.mark.slow
def test_cartpole_mlp_variant_learns_with_rewards_scaled_and_needs_the_stable_step_without():
    """experiments/archive/cartpole_mlp.toml's BSUITE_DQN IVIDQN (plain SGD, no clipping): with
    reward_scale 0.01 its greedy return after 5e4 steps is at least 250; with the rewards
    unscaled, plain SGD (``stable_lr=False``) diverges, and the stable step keeps the same run
    finite past the step where it did."""
    config = load_rl_config(
        Path(__file__).resolve().parents[2] / "experiments" / "archive" / "cartpole_mlp.toml"
    )
    env = config.envs[0]
    spec = agent_on(next(a for a in config.agents if a.label == "ivi_dqn_mlp"), env)
    assert spec.settings["reward_scale"] == 0.01
    model = build_agent(spec, make_env(env), seed=0)
    model.learn(total_timesteps=env.timesteps)
    mean, _ = evaluate_policy(model, Monitor(gym.make("CartPole-v1")), n_eval_episodes=20)
    assert mean >= 250

    def unscaled(stable_lr: bool):
        settings = {**spec.settings, "reward_scale": 1.0, "stable_lr": stable_lr}
        return build_agent(dataclasses.replace(spec, settings=settings), make_env(env), seed=0)

    with pytest.raises(FloatingPointError, match=r"diverged") as plain:
        unscaled(False).learn(total_timesteps=env.timesteps)
    step = int(re.search(r"at step (\d+)", str(plain.value)).group(1))
    stable = unscaled(True)
    stable.learn(total_timesteps=step + 1000)
    data = stable.replay_buffer.sample(128)
    assert np.isfinite(float(stable._loss(data).detach()))
