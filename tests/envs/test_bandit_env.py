from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from ivi_rl import envs

SYNTHETIC = {"Wheel": {"delta": 0.9}, "Linear": {}, "SparseLinear": {}, "NeuralUCB": {}}
SHARED_FILES = {"Mushroom", "Statlog", "Financial", "Jester"}
FORMAT_FILES = {"Adult", "Covertype", "Census"}


def _kwargs(stem, request, tmp_path):
    if stem in SYNTHETIC:
        return dict(SYNTHETIC[stem], horizon=20)
    if stem in SHARED_FILES:
        return {"data_dir": request.getfixturevalue("shared_data"), "horizon": 20}
    if stem in FORMAT_FILES:
        return {"data_dir": request.getfixturevalue("format_files"), "horizon": 4}
    if stem == "Arrays":
        rng = np.random.default_rng(0)
        np.savez(
            tmp_path / "m.npz", contexts=rng.normal(size=(9, 3)), rewards=rng.normal(size=(9, 2))
        )
        return {"path": tmp_path / "m.npz", "horizon": 9}
    assert stem == "Classification"
    return {"x": np.arange(12.0).reshape(6, 2), "y": np.array([0, 1, 2, 0, 1, 2]), "horizon": 6}


@pytest.mark.parametrize("stem", sorted(envs.BANDIT_IDS))
def test_every_registered_bandit_passes_the_env_checkers(stem, request, tmp_path):
    env = gym.make(f"ivi_rl/{stem}-v0", **_kwargs(stem, request, tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure too
        if stem in ("Linear", "SparseLinear"):  # Gaussian contexts: unbounded is the truth
            warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped)
    assert env.spec.id == f"ivi_rl/{stem}-v0"


@pytest.mark.parametrize("stem", ["DeepSea", "DeepSeaStochastic"])
def test_deep_sea_passes_the_env_checkers(stem):
    env = gym.make(f"ivi_rl/{stem}-v0", size=6)
    check_env(env.unwrapped, skip_render_check=True)
    with warnings.catch_warnings():
        # bsuite's observation is the N x N grid; SB3 only advises flattening it
        warnings.filterwarnings("ignore", message=".*unconventional shape.*")
        sb3_check_env(env.unwrapped)


def test_episode_is_one_trial_with_exact_regret_in_info():
    env = gym.make("ivi_rl/Wheel-v0", delta=0.5, horizon=50)
    obs, info = env.reset(seed=3)
    trial = env.unwrapped.trial
    np.testing.assert_array_equal(obs, trial.contexts[0])
    assert info["optimal_action"] == trial.optimal_actions[0]
    rng = np.random.default_rng(0)
    total_regret, t = 0.0, 0
    while True:
        arm = int(rng.integers(5))
        obs, reward, terminated, truncated, info = env.step(arm)
        assert reward == trial.rewards[t, arm]
        assert info["expected_reward"] == trial.expected_rewards[t, arm]
        assert info["optimal_reward"] == trial.optimal_rewards[t]
        assert info["regret"] == pytest.approx(
            trial.optimal_rewards[t] - trial.expected_rewards[t, arm]
        )
        assert info["optimal_action"] == trial.optimal_actions[t]
        total_regret += info["regret"]
        t += 1
        assert not terminated
        if truncated:
            break
        np.testing.assert_array_equal(obs, trial.contexts[t])
    assert t == 50 and total_regret > 0


def test_reset_seed_fixes_the_trial_and_unseeded_resets_move_on():
    env = envs.ContextualBanditEnv("wheel", horizon=30, delta=0.7)
    env.reset(seed=11)
    first = env.unwrapped.trial
    env.reset()
    second = env.unwrapped.trial
    env.reset(seed=11)
    np.testing.assert_array_equal(env.trial.contexts, first.contexts)
    np.testing.assert_array_equal(env.trial.rewards, first.rewards)
    assert not np.array_equal(second.contexts, first.contexts)


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (5, ValueError, r"action=5 is out of range; accepted: 0..4"),
        (-1, ValueError, r"action=-1 is out of range"),
        (1.5, TypeError, r"action=1.5 must be an int arm index in \[0, 4\]"),
        ("2", TypeError, r"action='2' must be an int"),
        (True, TypeError, r"action=True must be an int"),
    ],
)
def test_bad_actions(action, error, match):
    env = envs.ContextualBanditEnv("wheel", horizon=5)
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(action)


def test_numpy_actions_are_accepted():
    env = envs.ContextualBanditEnv("wheel", horizon=5)
    env.reset(seed=0)
    env.step(np.int64(2))
    env.step(np.array(3))
    env.step(np.array([1]))


def test_step_before_reset_and_after_the_end():
    env = envs.ContextualBanditEnv("wheel", horizon=2)
    with pytest.raises(RuntimeError, match=r"step\(\) was called before reset\(\)"):
        env.step(0)
    env.reset(seed=0)
    env.step(0)
    assert env.step(0)[3] is True
    with pytest.raises(RuntimeError, match=r"the episode is over"):
        env.step(0)


def test_bad_env_arguments():
    with pytest.raises(ValueError, match=r"horizon=-5 must be a positive int"):
        envs.ContextualBanditEnv("wheel", horizon=-5)
    with pytest.raises(ValueError, match=r"delta=1.5 must be in the open interval"):
        gym.make("ivi_rl/Wheel-v0", delta=1.5)
    with pytest.raises(TypeError, match=r"need a dataset name"):
        envs.ContextualBanditEnv(envs.WheelProblem(), delta=0.3)


@pytest.mark.parametrize("delta", [0.5, 0.7, 0.9, 0.95])
def test_wheel_uniform_regret_matches_the_closed_form(delta):
    """Uniform's expected regret per step is 0.16 delta^2 + 39.16 (1 - delta^2). Per-step
    regrets of uniformly random arms over 100,000 steps; the tolerance is 4 standard errors
    of the sample mean (CLT)."""
    trial = envs.make_problem("wheel", delta=delta).sample_trial(100_000, seed=int(delta * 100))
    actions = np.random.default_rng(1).integers(0, 5, size=trial.horizon)
    regret = trial.regret(actions)
    expected = 0.16 * delta**2 + 39.16 * (1 - delta**2)
    se = regret.std() / np.sqrt(regret.size)
    assert abs(regret.mean() - expected) < 4 * se
    # and the optimum: the 1.2 arm (last) inside the disc, the quadrant's arm outside
    inside = np.linalg.norm(trial.contexts, axis=1) <= delta
    assert (trial.optimal_actions[inside] == 4).all() and (trial.optimal_actions[~inside] < 4).all()
