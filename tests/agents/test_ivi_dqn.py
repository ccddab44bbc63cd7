"""IVIDQN on stable-baselines3: posterior draws per episode, SB3 conventions, muP groups."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from rl_helpers import BSUITE_DQN, ONE_LOWRANK_NETWORK, deep_sea
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.torch_layers import FlattenExtractor

import ivi_rl
from ivi_rl import envs
from ivi_rl.agents import IVIDQN

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_one_draw_per_episode():
    """Q-values of a fixed observation are constant within an episode and change when an
    episode ends (the callback sees them after every environment step)."""
    from stable_baselines3.common.callbacks import BaseCallback

    probe = torch.zeros(1, 36)
    probe[0, 7] = 1.0
    seen: list[tuple[bool, np.ndarray]] = []

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            with torch.no_grad():
                q = self.model.policy.q_net.held_q(probe)[0].numpy().copy()
            seen.append((bool(self.locals["dones"][0]), q))
            return True

    model = IVIDQN("MlpPolicy", deep_sea(6), seed=1, **BSUITE_DQN)
    model.learn(total_timesteps=6 * 5, callback=Record())
    # before learning starts the network is fixed, so held Q changes only through a new draw;
    # the draw is replaced in _store_transition, after the callback of the episode's last step
    episodes = [seen[i : i + 6] for i in range(0, 30, 6)]
    for episode in episodes:
        assert all(np.array_equal(q, episode[0][1]) for _, q in episode)
        assert episode[-1][0] and not any(done for done, _ in episode[:-1])
    assert not np.allclose(episodes[0][0][1], episodes[1][0][1])


def test_learning_rates_keep_their_mup_multipliers_through_sb3_schedules():
    model = IVIDQN(
        "MlpPolicy",
        deep_sea(5),
        seed=0,
        **{**BSUITE_DQN, "learning_rate": lambda p: 1e-3 * (0.5 + p), "learning_starts": 10},
    )
    model.learn(total_timesteps=5 * 20)
    groups = model.policy.optimizer.param_groups
    base = model.lr_schedule(model._current_progress_remaining)
    assert len({g["lr"] for g in groups}) > 1
    for g in groups:
        assert g["lr"] == pytest.approx(base * g["lr_multiplier"])
    names = {n for g in groups for n in g["names"]}
    assert names == {n for n, p in model.policy.q_net.named_parameters()}


def test_fused_optimizer_is_the_default_and_trains_like_the_per_tensor_loop():
    # one model after the other: SB3 seeds the global RNGs (replay sampling) at construction
    fused = IVIDQN("MlpPolicy", deep_sea(5), seed=0, **BSUITE_DQN)
    fused.learn(total_timesteps=5 * 40)  # 72 updates
    kwargs = {**BSUITE_DQN["policy_kwargs"], "optimizer_kwargs": {"foreach": False}}
    looped = IVIDQN("MlpPolicy", deep_sea(5), seed=0, **{**BSUITE_DQN, "policy_kwargs": kwargs})
    looped.learn(total_timesteps=5 * 40)  # the same data and draws
    assert fused.policy.optimizer.defaults["fused"] is True
    assert not looped.policy.optimizer.defaults["fused"]
    for (name, a), b in zip(
        fused.policy.q_net.named_parameters(), looped.policy.q_net.parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_training_mode_switches_still_reach_every_module():
    policy = IVIDQN("MlpPolicy", deep_sea(5), seed=0, **BSUITE_DQN).policy
    for mode in (True, True, False, False, True):
        policy.set_training_mode(mode)
        assert all(m.training == mode for m in policy.q_net.modules())
        assert not any(m.training for m in policy.q_net_target.modules())


def test_a_module_that_overrides_train_gets_its_own_call_and_bad_modes_are_named():
    from stable_baselines3.common.torch_layers import FlattenExtractor

    seen: list[bool] = []

    class Recording(FlattenExtractor):
        def __init__(self, observation_space):
            super().__init__(observation_space)
            self.dropout = torch.nn.Dropout(0.5)

        def train(self, mode: bool = True):
            seen.append(mode)
            return super().train(mode)

    kwargs = {**BSUITE_DQN, "policy_kwargs": {"features_extractor_class": Recording}}
    policy = IVIDQN("MlpPolicy", deep_sea(5), seed=0, **kwargs).policy
    seen.clear()
    start = policy.q_net.training
    for mode in (start, not start, not start, start):  # the unchanged ones return at once
        policy.set_training_mode(mode)
        assert policy.q_net.features_extractor.dropout.training == mode
    assert seen == [not start, start]
    with pytest.raises(ValueError, match=r"mode='yes' is not accepted; accepted: True, False"):
        policy.set_training_mode("yes")


def test_clipping_at_inf_is_skipped_and_a_small_norm_still_clips():
    """At inf SB3's clip multiplies the gradients by 1.0, so skipping it changes nothing: the
    same run as clipping at a norm no gradient reaches; a small norm changes the run."""
    runs = {}
    for norm in (float("inf"), 1e30, 1e-3):
        model = IVIDQN("MlpPolicy", deep_sea(5), seed=3, max_grad_norm=norm, **BSUITE_DQN)
        model.learn(total_timesteps=5 * 40)
        runs[norm] = torch.cat([p.flatten() for p in model.policy.q_net.parameters()])
    assert torch.equal(runs[float("inf")], runs[1e30])
    assert not torch.equal(runs[1e30], runs[1e-3])


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    model = IVIDQN("MlpPolicy", deep_sea(5), seed=0, **BSUITE_DQN)
    model.learn(total_timesteps=5 * 40)
    obs = np.eye(25, dtype=np.float32)
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "ivi_dqn")
    loaded = IVIDQN.load(tmp_path / "ivi_dqn")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], actions)
    for name, p in model.policy.state_dict().items():
        torch.testing.assert_close(loaded.policy.state_dict()[name], p)
    mean, _ = evaluate_policy(loaded, Monitor(deep_sea(5)), n_eval_episodes=2)
    assert np.isfinite(mean)


def test_deep_seas_grid_observation_needs_no_flattening():
    """IVIDQN with nothing set on Deep Sea's 2-D observation makes the run it makes on the
    flattened one (same seed: same parameters after 100 steps), with the input scaled by
    sqrt(N^2) = N."""
    params = []
    for env in (gym.make("ivi_rl/DeepSea-v0", size=5), deep_sea(5)):
        model = IVIDQN("MlpPolicy", env, seed=0, learning_starts=20, batch_size=16)
        assert model.policy.q_net.input_scale == 5.0
        model.learn(total_timesteps=100)
        params.append(torch.cat([p.flatten() for p in model.policy.q_net.parameters()]))
    torch.testing.assert_close(params[0], params[1], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("algorithm", "kwargs"),
    [
        ("IVIDQN", {}),
        ("BootstrappedDQN", {}),
        ("IVIDQN", {"tau": 1.0, "target_update_interval": 4}),
    ],
)
def test_the_target_update_is_sb3s_polyak_update_bit_for_bit(algorithm, kwargs, monkeypatch):
    """The posterior-sampling DQNs' target update (listed parameters, foreach kernels) makes
    the run SB3's DQN._on_step makes, soft (IVIDQN's default tau 0.01) and hard (tau 1)."""
    from stable_baselines3 import DQN

    import ivi_rl.agents

    cls = getattr(ivi_rl.agents, algorithm)
    runs = []
    for on_step in (None, DQN._on_step):
        if on_step is not None:
            monkeypatch.setattr(cls, "_on_step", on_step)
        model = cls("MlpPolicy", deep_sea(5), seed=0, learning_starts=20, batch_size=16, **kwargs)
        model.learn(total_timesteps=120)
        runs.append([p.detach().clone() for p in model.policy.q_net_target.parameters()])
    assert len(runs[0]) == len(runs[1])
    for ours, sb3s in zip(*runs, strict=True):
        torch.testing.assert_close(ours, sb3s, rtol=0, atol=0)


def test_bias_prior_std_is_a_policy_setting():
    """Default: zero-std biases (point masses at 0); bias_std=1 restores the muP table."""
    default = IVIDQN("MlpPolicy", deep_sea(5), seed=0, **BSUITE_DQN).policy.q_net.q_net
    layers = [layer for net in default.nets for layer in net.layers]  # one MLP per action
    assert all(torch.equal(layer.bias, torch.zeros_like(layer.bias)) for layer in layers)
    table = IVIDQN(
        "MlpPolicy",
        deep_sea(5),
        seed=0,
        **{
            **BSUITE_DQN,
            "policy_kwargs": dict(net_arch=[50, 50], bias_std=1.0, **ONE_LOWRANK_NETWORK),
        },
    ).policy.q_net.q_net
    assert table.layers[-1].bias.abs().sum() > 0
    assert table.parametrization == ivi_rl.MaximalUpdate(bias_std=1.0)


def test_logging_the_spread_does_not_change_training():
    """The spread's extra draws come from a diagnostics generator, not the training one."""
    runs = []
    for spread_draws in (0, 8):
        model = IVIDQN(
            "MlpPolicy",
            deep_sea(5),
            seed=3,
            spread_draws=spread_draws,
            **{**BSUITE_DQN, "learning_starts": 20},
        )
        model.learn(total_timesteps=150)
        runs.append({k: v.clone() for k, v in model.policy.state_dict().items()})
    for name, value in runs[0].items():
        assert torch.equal(value, runs[1][name]), name


def test_deterministic_uses_the_posterior_mean():
    model = IVIDQN("MlpPolicy", deep_sea(5), seed=0, **BSUITE_DQN)
    obs = torch.eye(25)
    expected = model.policy.q_net.mean_q(obs).argmax(1).numpy()
    np.testing.assert_array_equal(model.predict(obs.numpy(), deterministic=True)[0], expected)


def test_zero_bias_prior_makes_posterior_draws_state_dependent():
    """Why IVIDQN's biases have prior std 0 (experiments.prior_spread, seeded, 400 draws): with
    the muP table's bias std 1 every draw prefers the same action in all 64 Deep Sea states
    (measured 1.00); with bias std 0 the preference varies between states (measured 0.37),
    and what remains of the prior spread is state-dependent."""
    from experiments.prior_spread import measure

    _, _, same_with_table_biases = measure(ivi_rl.MaximalUpdate(bias_std=1.0))
    total, state_dependent, same = measure(ivi_rl.MaximalUpdate(bias_std=0.0))
    assert same_with_table_biases > 0.95
    assert same < 0.6
    assert state_dependent > 0.5 * total


def test_input_scale_multiplies_the_networks_input(tmp_path):
    """'sqrt_dim' scales a one-hot Deep Sea observation (dim 25) by 5; a number by itself;
    the setting survives save / load."""
    obs = torch.eye(25)[:7]
    for setting, factor in (("sqrt_dim", 5.0), (2.5, 2.5)):
        model = IVIDQN(
            "MlpPolicy",
            deep_sea(5),
            seed=0,
            **{**BSUITE_DQN, "policy_kwargs": dict(net_arch=[50, 50], input_scale=setting)},
        )
        q_net = model.policy.q_net
        assert q_net.input_scale == factor
        noise = q_net.q_net.sample_noise(generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(q_net(obs, noise), q_net.q_net(obs * factor, noise))
        torch.testing.assert_close(q_net.mean_q(obs), q_net.q_net.posterior_mean(obs * factor))
        model.save(tmp_path / "model")
        assert IVIDQN.load(tmp_path / "model").policy.q_net.input_scale == factor


def _bounded_box(low, high) -> gym.spaces.Box:
    return gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32))


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        # MountainCar-v0: position in [-1.2, 0.6], velocity in [-0.07, 0.07]
        (_bounded_box([-1.2, -0.07], [0.6, 0.07]), [1 / 1.2, 1 / 0.07]),
        # CartPole-v1's shape: infinite velocity bounds keep factor 1
        (
            _bounded_box([-4.8, -np.inf, -0.42, -np.inf], [4.8, np.inf, 0.42, np.inf]),
            [1 / 4.8, 1.0, 1 / 0.42, 1.0],
        ),
        # float32's largest value is a "no bound" sentinel; a zero bound is left as it is
        (
            _bounded_box(
                [-np.finfo(np.float32).max, 0.0, 0.0], [np.finfo(np.float32).max, 0.0, 4.0]
            ),
            [1.0, 1.0, 0.25],
        ),
        (_bounded_box([0.0] * 4, [1.0] * 4), None),  # one-hot Deep Sea: nothing to scale
        (gym.spaces.Box(0, 255, (36, 36, 3), np.uint8), None),  # an image: SB3 scales it
        (gym.spaces.Discrete(3), None),
    ],
)
def test_bound_scale_divides_each_coordinate_by_its_declared_bound(space, expected):
    from ivi_rl.agents.sb3.policies import bound_scale

    factors = bound_scale(space, FlattenExtractor(space))
    if expected is None:
        assert factors is None
    else:
        torch.testing.assert_close(factors, torch.tensor(expected), rtol=1e-6, atol=0)


def test_input_bounds_scale_the_networks_input(tmp_path):
    """MountainCar's observation reaches the network divided by its bounds, then times
    sqrt(2); ``input_bounds=False`` leaves the bounds out; both survive save / load, and a
    custom features extractor (features that are not the observation) is not scaled."""
    env = gym.make("MountainCar-v0")
    obs = torch.tensor([[-0.5, 0.01], [0.3, -0.07], [-1.2, 0.05]])
    bounds = torch.tensor([1.2, 0.07])
    for input_bounds, x in ((True, obs / bounds), (False, obs)):
        kwargs = dict(net_arch=[16], input_bounds=input_bounds)
        model = IVIDQN("MlpPolicy", env, seed=0, policy_kwargs=kwargs)
        q_net = model.policy.q_net
        expected = x * 2**0.5
        torch.testing.assert_close(q_net.features(obs), expected)
        torch.testing.assert_close(q_net.mean_q(obs), q_net.q_net.posterior_mean(expected))
        torch.testing.assert_close(model.policy.q_net_target.features(obs), expected)
        model.save(tmp_path / "model")
        loaded = IVIDQN.load(tmp_path / "model").policy.q_net
        torch.testing.assert_close(loaded.features(obs), expected)
        torch.testing.assert_close(loaded.mean_q(obs), q_net.mean_q(obs))

    class Doubled(FlattenExtractor):
        def forward(self, observations):
            return 2 * super().forward(observations)

    kwargs = dict(net_arch=[16], features_extractor_class=Doubled)
    q_net = IVIDQN("MlpPolicy", env, seed=0, policy_kwargs=kwargs).policy.q_net
    torch.testing.assert_close(q_net.features(obs), 2 * obs * 2**0.5)


def test_a_model_saved_before_input_bounds_loads_as_it_was_trained(tmp_path):
    """The setting is saved with every model, the default too; a model whose saved
    policy_kwargs lack it (saved before the option existed) loads with the undivided
    observation it was trained on, and predicts as before saving."""
    env = gym.make("MountainCar-v0")
    obs = torch.tensor([[-0.5, 0.01], [0.3, -0.07]])
    user_kwargs = {"net_arch": [16]}
    model = IVIDQN("MlpPolicy", env, seed=0, policy_kwargs=user_kwargs)
    assert user_kwargs == {"net_arch": [16]}  # the caller's dict is not changed
    assert model.policy_kwargs["input_bounds"] is True
    model.save(tmp_path / "new")
    assert IVIDQN.load(tmp_path / "new").policy.q_net.settings.input_bounds is True

    old = IVIDQN("MlpPolicy", env, seed=0, policy_kwargs={**user_kwargs, "input_bounds": False})
    del old.policy_kwargs["input_bounds"]  # what a model saved before the option holds
    old.save(tmp_path / "old")
    loaded = IVIDQN.load(tmp_path / "old").policy.q_net
    assert loaded.settings.input_bounds is False
    torch.testing.assert_close(loaded.features(obs), obs * 2**0.5)
    torch.testing.assert_close(loaded.mean_q(obs), old.policy.q_net.mean_q(obs))


@pytest.mark.parametrize("bad", [0, -1.0, "big", True])
def test_bad_input_scale_is_named(bad):
    with pytest.raises(ValueError, match=r"input_scale=.* accepted: a number > 0 or 'sqrt_dim'"):
        IVIDQN("MlpPolicy", deep_sea(5), policy_kwargs=dict(input_scale=bad))


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [("bias", "no", "True, False"), ("per_action", "yes", "True, False")],
)
def test_bad_structure_settings_are_named(name, value, accepted):
    with pytest.raises(
        ValueError, match=rf"{name}='{value}' is not accepted; accepted: {accepted}"
    ):
        IVIDQN("MlpPolicy", deep_sea(5), policy_kwargs={name: value})


def test_the_stochastic_layers_means_start_at_zero_and_deterministic_ones_do_not():
    model = IVIDQN(
        "MlpPolicy",
        deep_sea(5),
        seed=0,
        **{
            **BSUITE_DQN,
            "policy_kwargs": dict(net_arch=[20, 20], cov="diagonal", **ONE_LOWRANK_NETWORK),
        },
    )
    for net in (model.policy.q_net, model.policy.q_net_target):
        layers = net.q_net.layers
        assert [layer.is_stochastic for layer in layers] == [True, False, True]
        assert not layers[0].weight.any() and not layers[2].weight.any()
        assert layers[1].weight.any()


def _deep_sea_solve_episode(
    agent: str, seed: int, tmp_path, episodes: int = 400, size: int = 8, config: str = ""
):
    """bsuite's solve episode of one runner task on Deep Sea N = ``size`` (None if not solved
    within ``episodes``), with the agent's settings from ``config`` (by default the ablation
    whose N = 8 runs RESULTS.md reports); the env is taken from the sweep's first size."""
    import dataclasses
    import io

    from ivi_rl.pipeline.rl_config import RLTask, load_rl_config
    from ivi_rl.pipeline.rl_runner import execute_rl
    from ivi_rl.pipeline.store import run_paths

    config = load_rl_config(
        EXPERIMENTS / (config or "archive/ablations/deep_sea_input.toml"),
        out=str(tmp_path),
    )
    config = dataclasses.replace(config, stop_when_solved=True)
    env = dataclasses.replace(
        config.envs[0],
        label=f"deep_sea_{size}",
        kwargs={**config.envs[0].kwargs, "size": size},
        episodes=episodes,
    )
    spec = next(a for a in config.agents if a.label == agent)
    task = RLTask(env, spec, seed, config)
    output = execute_rl(task)
    result_file = run_paths(env.label, spec.label, seed)[1]
    with np.load(io.BytesIO(output.files[result_file])) as result:
        return None if int(result["solved"]) < 0 else int(result["solved"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_deep_sea_20_the_sweeps_ivi_dqn_solves_it_and_epsilon_greedy_dqn_does_not(seed, tmp_path):
    """Deep Sea N = 20 within 600 episodes, the linear IVIDQN of the archived sweep and
    bsuite's epsilon-greedy DQN (experiments/archive/deep_sea_linear.toml; about 15 s for
    IVIDQN, 20 s for DQN here).

    The bound: in that sweep IVIDQN solved N = 20 at episodes 314, 409 and 376 (seeds 0-2),
    so 600 leaves a margin of 1.5x over the slowest seed; dithering needs about 2^20
    episodes, and epsilon-greedy DQN solved no size from 10 up in the sweep's runs."""
    sweep = "archive/deep_sea_linear.toml"
    assert _deep_sea_solve_episode("ivi_dqn", seed, tmp_path / "ivi", 600, 20, sweep) <= 600
    assert _deep_sea_solve_episode("dqn", seed, tmp_path / "dqn", 600, 20, sweep) is None


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_deep_sea_10_the_mlp_ivi_dqn_solves_it_within_2_to_the_n_episodes(seed, tmp_path):
    """Deep Sea N = 10 within 2^10 + 100 episodes, the first MLP IVIDQN (one MLP per action,
    experiments/archive/deep_sea_linear.toml; under a minute here); dithering needs about 2^N.

    The bound: in its sweep (seeds 2-4) it solved N = 10 at episodes 562, 277 and 278, so
    1,124 leaves a margin of 2x over the slowest seed."""
    episodes = 2**10 + 100
    sweep = "archive/deep_sea_linear.toml"
    solved = _deep_sea_solve_episode("ivi_dqn_mlp", seed, tmp_path, episodes, 10, sweep)
    assert solved is not None and solved <= episodes


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_deep_sea_10_the_defaults_solve_it_and_epsilon_greedy_dqn_does_not(seed, tmp_path):
    """Deep Sea N = 10 within 2^10 + 100 episodes: IVIDQN with nothing set (the agent of
    experiments/deep_sea.toml) solves it; bsuite's epsilon-greedy DQN (the same config) does
    not (about 20 s each here).

    The bound: the defaults' schedule was chosen on these seeds, which solved N = 10 at
    episodes 517 and 318, a margin of 2.2x; dithering needs about 2^N episodes, and DQN
    solved no size from 10 up in the sweep's runs."""
    from ivi_rl.pipeline.rl_config import load_rl_config

    config = "deep_sea.toml"
    agent = load_rl_config(EXPERIMENTS / config).agents[0]
    assert agent.label == "ivi_dqn" and agent.settings == {}
    episodes = 2**10 + 100
    solved = _deep_sea_solve_episode("ivi_dqn", seed, tmp_path / "ivi", episodes, 10, config)
    assert solved is not None and solved <= episodes
    dqn = _deep_sea_solve_episode("dqn", seed, tmp_path / "dqn", episodes, 10, config)
    assert dqn is None


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_deep_sea_8_ivi_dqn_solves_it_and_epsilon_greedy_dqn_does_not(seed, tmp_path):
    """Deep Sea N = 8 within 400 episodes, IVIDQN with its Deep Sea settings against
    epsilon-greedy DQN, both as configured in experiments/archive/ablations/deep_sea_input.toml.

    The bound: in the ablation (6 seeds, RESULTS.md) IVIDQN solved N = 8 in every seed, at
    episodes 86-239, so 400 leaves a margin of 1.7x over the slowest seed; DQN solved it in 2
    of 6 seeds (episodes 226 and 323, seeds 4 and 5), so dithering can get lucky and the
    seeds asserted here are the ablation's seeds 0 and 1, where it did not (0 and 4 good
    episodes in 500). The runner is deterministic on CPU; since the ablation IVIDQN's optimizer
    became fused Adam, which rounds differently, and its seeds 0 and 1 now solve at episodes
    294 and 105 (ablation: 239 and 105), still inside the bound (DQN's runs are unchanged)."""
    assert _deep_sea_solve_episode("ivi_dqn", seed, tmp_path / "ivi") <= 400
    assert _deep_sea_solve_episode("dqn", seed, tmp_path / "dqn") is None


@pytest.mark.slow
def test_deep_sea_8_randomized_priors_solve_it():
    """BootstrappedDQN with randomized priors solved N = 8 in every seed of the ablations."""
    from ivi_rl.agents import BootstrappedDQN

    boot_env = deep_sea(8)
    BootstrappedDQN("MlpPolicy", boot_env, seed=0).learn(total_timesteps=8 * 500)
    bad = [True] * boot_env.unwrapped.total_bad_episodes
    assert envs.solve_episode(bad + [False] * (500 - len(bad))) is not None


@pytest.mark.parametrize(
    ("env_id", "match"),
    [
        ("Pendulum-v1", "needs a Discrete action space"),
        ("Blackjack-v1", "needs a Box, Discrete, MultiDiscrete or MultiBinary observation space"),
    ],
)
def test_wrong_spaces_fail_at_construction(env_id, match):
    with pytest.raises(ValueError, match=match):
        IVIDQN("MlpPolicy", gym.make(env_id))


def _trained(output_noise: str):
    model = IVIDQN(
        "MlpPolicy",
        deep_sea(5),
        seed=0,
        output_noise=output_noise,
        **{
            **BSUITE_DQN,
            "learning_starts": 32,
            "batch_size": 32,
            "policy_kwargs": dict(net_arch=[50, 50], **ONE_LOWRANK_NETWORK),
        },
    )
    model.learn(total_timesteps=5 * 20)
    return model, model.replay_buffer.sample(32)


def test_marginalized_output_noise_is_the_sampled_loss_averaged_over_that_noise():
    """The closed form equals the mean over the output layer's noise of the sampled squared TD
    loss (input layer at one draw, target fixed): 4,000 draws, relative tolerance 3%."""
    model, batch = _trained("marginalized")
    q_net, n = model.policy.q_net, 4000
    noise = q_net.q_net.sample_noise(generator=torch.Generator().manual_seed(1))
    target = torch.randn(32, 1, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        closed = model._td_loss(batch, noise, target)
        last = q_net.q_net.sample_noise((n,), torch.Generator().manual_seed(3)).tensors[1]
        draws = ivi_rl.Noise((noise.tensors[0].expand(n, -1), last), torch.Size([n]))
        q = q_net.q_net(q_net.features(batch.observations), draws)  # [n, 32, 2]
        sampled = (q.gather(2, batch.actions.long().expand(n, -1, -1)) - target).pow(2)
    torch.testing.assert_close(sampled.mean(), closed, rtol=0.03, atol=0)


def test_marginalized_output_noise_takes_the_sampling_noise_out_of_the_output_scales_gradient():
    """Two draws that differ only in the output layer's noise give the same gradient on the
    output layer's covariance under 'marginalized', and different ones under 'sampled'."""
    for output_noise, same in (("marginalized", True), ("sampled", False)):
        model, batch = _trained(output_noise)
        q_net, target = model.policy.q_net, torch.zeros(32, 1)
        first = q_net.q_net.sample_noise(generator=torch.Generator().manual_seed(1))
        grads = []
        for seed in (2, 3):
            other = q_net.q_net.sample_noise(generator=torch.Generator().manual_seed(seed))
            noise = ivi_rl.Noise((first.tensors[0], other.tensors[1]), torch.Size())
            scale = q_net.q_net.layers[-1].cov.weight_factor
            (grad,) = torch.autograd.grad(model._td_loss(batch, noise, target), scale)
            grads.append(grad)
        assert torch.equal(*grads) is same, output_noise


def test_output_noise_survives_save_and_load(tmp_path):
    model, _ = _trained("marginalized")
    model.save(tmp_path / "m")
    assert IVIDQN.load(tmp_path / "m").output_noise == "marginalized"


def test_reward_scale_multiplies_the_rewards_in_the_td_target_and_survives_save_load(tmp_path):
    model, batch = _trained("sampled")
    noise = model.policy.q_net.q_net.sample_noise(generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model._td_target(batch, noise)
        model.value_scale = 0.25
        scaled = model._td_target(batch, noise)
    torch.testing.assert_close(scaled - plain, (0.25 - 1) * batch.rewards)
    model.reward_scale = 0.25
    model.save(tmp_path / "m")
    loaded = IVIDQN.load(tmp_path / "m")
    assert (loaded.reward_scale, loaded.value_scale) == (0.25, 0.25)


def test_rewards_scale_is_one_over_the_largest_reward_seen(tmp_path):
    """Any env's reward, at every step, only falling; rewards within +-1 leave it at 1."""
    model = IVIDQN("MlpPolicy", deep_sea(5), seed=0, **BSUITE_DQN)
    assert model.reward_scale == "rewards"  # the default
    model.set_logger(configure(str(tmp_path), []))
    track = model._track_rewards
    track(np.array([0.5, -1.0]))
    assert (model.reward_bound, model.value_scale) == (1.0, 1.0)
    track(np.array([2.0, -8.0]))  # no episode needs to end
    assert (model.reward_bound, model.value_scale) == (8.0, 0.125)
    track(np.array([4.0, 0.0]))
    assert model.value_scale == 0.125
    track(np.array([0.0, 40.0]))
    assert model.value_scale == 1 / 40


def test_returns_scale_is_one_over_the_largest_discounted_episode_return(tmp_path):
    """Two envs: per-env discounted returns, the scale set at each episode's end, only
    falling; returns within +-1 leave it at 1."""
    model = IVIDQN(
        "MlpPolicy", deep_sea(5), seed=0, reward_scale="returns", gamma=0.5, **BSUITE_DQN
    )
    model.set_logger(configure(str(tmp_path), []))
    track = model._track_returns
    track(np.array([4.0, 1.0]), np.array([False, False]))
    assert model.value_scale == 1.0  # no episode has ended
    track(np.array([2.0, -8.0]), np.array([True, False]))  # env 0: 4 + 0.5 * 2 = 5
    assert (model.return_bound, model.value_scale) == (5.0, 0.2)
    track(np.array([0.0, 0.0]), np.array([True, True]))  # env 0: 0; env 1: 1 - 4 + 0 = -3
    assert (model.return_bound, model.value_scale) == (5.0, 0.2)
    track(np.array([40.0, 0.0]), np.array([True, False]))  # env 0: 40
    assert model.value_scale == 1 / 40


@pytest.mark.parametrize("rule", ["rewards", "returns"])
def test_scale_rules_on_deep_sea_are_scale_one_bit_for_bit(rule):
    runs = []
    for scale in (rule, 1.0):
        model = IVIDQN("MlpPolicy", deep_sea(5), seed=2, reward_scale=scale, **BSUITE_DQN)
        model.learn(total_timesteps=5 * 30)
        assert model.value_scale == 1.0
        runs.append(torch.cat([p.flatten() for p in model.policy.q_net.parameters()]))
    assert torch.equal(*runs)


def _cartpole_q_after_300_steps(units: float, reward_scale) -> torch.Tensor:
    """IVIDQN's parameters after 300 steps on CartPole with its rewards multiplied by units."""
    env = gym.wrappers.TransformReward(gym.make("CartPole-v1"), lambda r: units * r)
    model = IVIDQN("MlpPolicy", env, seed=3, reward_scale=reward_scale, **BSUITE_DQN)
    model.learn(total_timesteps=300)
    return torch.cat([p.flatten() for p in model.policy.q_net.parameters()])


@pytest.mark.parametrize("rule", ["rewards", "returns"])
def test_scale_rules_learn_the_same_agent_whatever_the_reward_units(rule):
    """Rewards counted in units 4 and 16 times smaller: the same Q-network, bit for bit
    (powers of two keep the products exact)."""
    assert torch.equal(
        _cartpole_q_after_300_steps(4.0, rule), _cartpole_q_after_300_steps(16.0, rule)
    )


def test_a_fixed_reward_scale_learns_another_agent_in_other_units():
    """The control of the test above: with c = 1 the units change the agent."""
    assert not torch.equal(
        _cartpole_q_after_300_steps(4.0, 1.0), _cartpole_q_after_300_steps(16.0, 1.0)
    )


def test_a_model_saved_with_auto_loads_with_the_returns_rule(tmp_path):
    """'auto' was the returns rule's name until 2026-12-07."""
    model, _ = _trained("sampled")
    model.reward_scale = "auto"
    model.save(tmp_path / "m")
    assert IVIDQN.load(tmp_path / "m").reward_scale == "returns"


def test_reward_scale_one_is_todays_agent_on_deep_sea_bit_for_bit():
    runs = []
    for kwargs in ({}, {"reward_scale": 1.0}):
        model = IVIDQN("MlpPolicy", deep_sea(5), seed=2, **BSUITE_DQN, **kwargs)
        model.learn(total_timesteps=5 * 30)
        runs.append(torch.cat([p.flatten() for p in model.policy.q_net.parameters()]))
    assert torch.equal(*runs)


@pytest.mark.parametrize(
    "bad", [0, -1.0, float("inf"), True, "big", "auto", "REWARDS", np.array([1.0, 2.0])]
)
def test_bad_reward_scale_is_named(bad):
    with pytest.raises(
        ValueError,
        match=r"reward_scale=.* accepted: a finite number > 0 or 'rewards' or 'returns'",
    ):
        IVIDQN("MlpPolicy", deep_sea(5), reward_scale=bad)


@pytest.mark.parametrize("algorithm", ["IVIDQN", "BootstrappedDQN", "NoisyDQN"])
@pytest.mark.parametrize("bad", [0, -0.5, 2.0, float("nan"), True, "soft"])
def test_bad_tau_is_named_before_training(algorithm, bad):
    import ivi_rl.agents

    cls = getattr(ivi_rl.agents, algorithm)
    with pytest.raises(ValueError, match=r"tau=.* is not accepted; accepted: a number in \(0, 1\]"):
        cls("MlpPolicy", deep_sea(5), tau=bad)


def test_bad_arguments():
    with pytest.raises(
        ValueError, match=r"output_noise='exact' is not accepted; accepted: sampled, marginalized"
    ):
        IVIDQN("MlpPolicy", deep_sea(5), output_noise="exact")
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'target'"):
        IVIDQN("MlpPolicy", deep_sea(5), target="mean")  # a variant (ivi_rl.contrib)
    with pytest.raises(
        ValueError, match=r"exploration_final_eps=0.1: IVIDQN explores by posterior sampling"
    ):
        IVIDQN("MlpPolicy", deep_sea(5), exploration_final_eps=0.1)
    for optimizer in (torch.optim.RMSprop, torch.optim.Adam):
        with pytest.raises(
            ValueError,
            match=rf"optimizer_class={optimizer.__name__} is not accepted; accepted: "
            r"torch.optim.SGD$",
        ):
            IVIDQN("MlpPolicy", deep_sea(5), policy_kwargs=dict(optimizer_class=optimizer))


@pytest.mark.cuda
def test_ivi_dqn_on_cuda(cuda_device):
    model = IVIDQN(
        "MlpPolicy", deep_sea(5), device="cuda", seed=0, **{**BSUITE_DQN, "learning_starts": 10}
    )
    model.learn(total_timesteps=100)
    assert next(model.policy.parameters()).device.type == "cuda"


def test_the_q_networks_settings_are_one_checked_dataclass(tmp_path):
    """policy_kwargs beyond SB3's become one QNetworkSettings, checked when built, saved and
    loaded whole; an unknown key names every accepted one."""
    from ivi_rl.agents.sb3.policies import QNetworkSettings

    env = gym.make("CartPole-v1")
    kwargs = {"net_arch": [8], "cov": "diagonal", "bias": False, "per_action": False}
    model = IVIDQN("MlpPolicy", env, policy_kwargs=kwargs, seed=0)
    expected = QNetworkSettings(cov="diagonal", bias=False, per_action=False)
    assert model.policy.settings == model.policy.q_net.settings == expected
    model.save(tmp_path / "m")
    assert IVIDQN.load(tmp_path / "m").policy.q_net_target.settings == expected
    with pytest.raises(TypeError, match=r"policy_kwargs \['bogus'\] are not accepted; accepted"):
        IVIDQN("MlpPolicy", env, policy_kwargs={"bogus": 1})
    with pytest.raises(ValueError, match=r"input_scale=-1 is not accepted"):
        QNetworkSettings(input_scale=-1)


def _train_on_one_action(per_action: bool, steps: int = 200):
    """An IVIDQN (one hidden layer, stochastic readout) trained only on (cell 0, action 0):
    returns the std over draws of Q(cell 0, .) before and after."""
    kwargs = dict(
        net_arch=[16],
        stochastic="last",
        cov="full",
        bias=False,
        parametrization="sp",
        input_scale="sqrt_dim",
        per_action=per_action,
        optimizer_class=torch.optim.SGD,
    )
    model = IVIDQN(
        "MlpPolicy",
        deep_sea(4),
        seed=0,
        learning_rate=0.03,
        output_noise="marginalized",
        policy_kwargs=kwargs,
    )
    model._setup_learn(total_timesteps=1)
    cells = torch.eye(16)
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    data = ReplayBufferSamples(
        observations=cells[:1].repeat(8, 1),
        actions=torch.zeros(8, 1, dtype=torch.long),
        next_observations=cells[4:5].repeat(8, 1),
        dones=torch.zeros(8, 1),
        rewards=torch.zeros(8, 1),
    )
    noise = model.policy.q_net.q_net.sample_noise((4000,), seed=1)
    before = model.policy.q_net.q_net(cells[:1] * 4, noise)[:, 0].std(0)
    for _ in range(steps):
        model.policy.optimizer.zero_grad()
        model._loss(data).backward()
        model.policy.optimizer.step()
    after = model.policy.q_net.q_net(cells[:1] * 4, noise)[:, 0].std(0)
    return model, before, after


def test_per_action_networks_keep_the_prior_of_the_action_not_taken(tmp_path):
    """per_action=True: one MLP per action (ivi_rl.SplitMLP). Training on one action in a
    cell collapses that action's spread there and leaves the other action's draws exactly at
    the prior; with shared hidden units (per_action=False) the other action's spread
    collapses with it. The setting survives save / load."""
    model, before, after = _train_on_one_action(per_action=True)
    assert isinstance(model.policy.q_net.q_net, ivi_rl.SplitMLP)
    assert after[0] < 0.1 * before[0]
    assert after[1] == before[1]
    _, shared_before, shared_after = _train_on_one_action(per_action=False)
    assert shared_after[0] < 0.1 * shared_before[0]
    assert shared_after[1] < 0.5 * shared_before[1]
    model.save(tmp_path / "model")
    loaded = IVIDQN.load(tmp_path / "model")
    assert loaded.policy.q_net.settings.per_action
    obs = torch.eye(16)[:3]
    torch.testing.assert_close(loaded.policy.q_net.mean_q(obs), model.policy.q_net.mean_q(obs))


class _TwoStateChain(gym.Env):
    """s0 -> s1 with reward 0 under the one action; s1's value is never trained."""

    observation_space = gym.spaces.Discrete(2)
    action_space = gym.spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        return 0, {}

    def step(self, action):
        return 1, 0.0, False, False, {}


class _Float64Flatten(FlattenExtractor):
    def forward(self, observations):
        return super().forward(observations).double()


def _variance_carried_back(output_noise: str, gamma: float = 0.9) -> tuple[float, float]:
    """Train Q on the one transition s0 -> s1 (Q linear in the one-hot state, full readout
    covariance, float64) to convergence; returns (Var Q(s0), gamma^2 Var Q_target(s1)) over
    the posterior's draws, exactly from the readout's factor."""
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    model = IVIDQN(
        "MlpPolicy",
        _TwoStateChain(),
        learning_rate=0.05,
        gamma=gamma,
        output_noise=output_noise,
        seed=0,
        policy_kwargs=dict(net_arch=[], bias=False, features_extractor_class=_Float64Flatten),
    )
    model.policy.double()
    model._setup_learn(total_timesteps=1)
    f64 = dict(dtype=torch.float64)
    batch = ReplayBufferSamples(
        torch.tensor([[0.0]]),
        torch.tensor([[0]]),
        torch.tensor([[1.0]]),
        torch.zeros(1, 1, **f64),
        torch.zeros(1, 1, **f64),
        None,
    )
    for _ in range(4000):
        loss = model._loss(batch)
        model.policy.optimizer.zero_grad()
        loss.backward()
        model.policy.optimizer.step()
    cells = torch.eye(2, **f64) * model.policy.q_net.input_scale

    def variance(net) -> torch.Tensor:
        factor = net.q_net.nets[0].layers[0].cov.factor().detach()
        return (cells @ factor).pow(2).sum(1)

    return variance(model.policy.q_net)[0].item(), gamma**2 * variance(model.policy.q_net_target)[
        1
    ].item()


def test_the_same_draw_sampled_loss_carries_the_next_states_variance_back():
    """Q(s0; z) is regressed on gamma Q_target(s1; z) under the same draw z, which is linear in
    z: the sampled loss's minimiser is Q(s0; z) = gamma Q_target(s1; z) for every z, so
    Var Q(s0) = gamma^2 Var Q_target(s1) (here 0.37; to 1e-12 in float64). The marginalized
    loss, (E Q - y(z))^2 + Var Q, drops the covariance of Q with its own target and takes the
    variance at s0 to 0: the control fails the same check."""
    var_q, carried = _variance_carried_back("sampled")
    assert carried > 0.1 and var_q == pytest.approx(carried, rel=1e-12)
    var_q, carried = _variance_carried_back("marginalized")
    assert var_q < 1e-12 * carried
