"""The bandit front door: run_agent, OneTrial and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ivi_rl import envs
from ivi_rl.agents.bandits import OneTrial, run_agent

SETTINGS = {"hidden": [16], "train_every": 20, "train_steps": 5, "batch_size": 16}


def _data(n=300):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4))
    return x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)


def test_run_agent_on_labelled_data_returns_per_step_curves():
    x, y = _data()
    problem = envs.ClassificationProblem(x, y)
    result = run_agent("lin_full_post", problem, horizon=200, seeds=[0, 1])
    uniform = run_agent("uniform", problem, horizon=200, seeds=[0, 1])
    assert result.regret.shape == result.actions.shape == result.rewards.shape == (2, 200)
    np.testing.assert_allclose(result.cumulative_regret[:, -1], result.regret.sum(1))
    # the learning agent beats uniform by far on a problem linear in the contexts
    assert result.cumulative_regret[:, -1].mean() < 0.8 * uniform.cumulative_regret[:, -1].mean()


def test_one_trial_makes_the_same_decisions_as_run_agent():
    x, y = _data(120)
    problem = envs.ClassificationProblem(x, y)
    batched = run_agent("ivi_ts", problem, horizon=120, seeds=[3], dtype=torch.float64, **SETTINGS)
    trial_data = problem.sample_trial(120, seed=3)
    trial = OneTrial(
        "ivi_ts", num_actions=3, context_dim=4, horizon=120, seed=3, dtype=torch.float64, **SETTINGS
    )
    actions = []
    for t in range(120):
        a = trial.action(trial_data.contexts[t])
        trial.update(trial_data.contexts[t], a, trial_data.rewards[t, a])
        actions.append(a)
    np.testing.assert_array_equal(batched.actions[0], actions)


def test_front_door_errors_and_threads_restored():
    before = torch.get_num_threads()
    with pytest.raises(TypeError, match=r"problem=ndarray is not accepted"):
        run_agent("uniform", np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"threads=0 is not accepted"):
        run_agent("uniform", "wheel", horizon=10, threads=0)
    run_agent("uniform", "wheel", horizon=10, threads=1)
    assert torch.get_num_threads() == before
    trial = OneTrial("uniform", num_actions=3, context_dim=4, horizon=5)
    with pytest.raises(ValueError, match=r"context has shape \(3,\); expected \(4,\)"):
        trial.action(np.zeros(3))
    with pytest.raises(ValueError, match=r"action=5 is not an arm in \[0, 3\)"):
        trial.update(np.zeros(4), 5, 1.0)
