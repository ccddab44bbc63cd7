"""NeuralTS: the sampled values' spread and the design update, against a per-arm autograd
loop on the same network (float64)."""

from __future__ import annotations

import pytest
import torch

from ivi_rl.agents.bandits import make_agent
from ivi_rl.agents.bandits.streams import TrialStreams

SETTINGS = {"hidden": [8, 8], "train_every": 10, "train_steps": 5, "batch_size": 8}


def _per_arm_gradients(agent, x, trial):
    """Gradient of arm a's output of one trial's network, one backward pass per arm."""
    out = []
    for arm in range(agent.num_actions):
        params = agent.net.parameters()
        value = agent.net(x[:, None, :])[trial, 0, arm]
        grads = torch.autograd.grad(value, params)
        out.append([g[trial] for g in grads])
    return out


def test_spread_is_nu_times_the_gradient_feature_std_and_design_accumulates():
    agent = make_agent(
        "neural_ts", 3, 4, [0, 1], 50, dtype=torch.float64, nu=0.5, lam=2.0, **SETTINGS
    )
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):  # past the initial pulls and one retrain
        x = torch.randn(2, 4, generator=gen, dtype=torch.float64)
        agent.observe(x, agent.act(x), torch.randn(2, generator=gen, dtype=torch.float64))
    x = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    _, grads = agent._mean_and_gradients(x)
    spread = agent._spread(grads)
    for trial in range(2):
        per_arm = _per_arm_gradients(agent, x, trial)
        for arm in range(3):
            var = sum(
                (g.pow(2) / u[trial]).sum() for g, u in zip(per_arm[arm], agent.design, strict=True)
            )
            expected = (0.25 * 2.0 * var).sqrt()
            torch.testing.assert_close(spread[trial, arm], expected, rtol=1e-10, atol=0)
    before = [u.clone() for u in agent.design]
    actions = agent._act(x)
    for trial in range(2):
        chosen = _per_arm_gradients(agent, x, trial)[int(actions[trial])]
        for u, u0, g in zip(agent.design, before, chosen, strict=True):
            torch.testing.assert_close(u[trial], u0[trial] + g.pow(2), rtol=1e-12, atol=0)


def test_posterior_values_have_the_network_mean_and_the_spread():
    """4,000 draws per arm: mean within 5 s.e. of the network's value, std within 5%."""
    agent = make_agent("neural_ts", 3, 4, [0], 50, dtype=torch.float64, nu=1.0, **SETTINGS)
    x = torch.randn(1, 4, dtype=torch.float64)
    mean, grads = agent._mean_and_gradients(x)
    spread = agent._spread(grads)
    draws = agent.posterior_values(x, 4000, TrialStreams([0], "diagnostics", agent.device))
    assert (draws.mean(0) - mean).abs().le(5 * spread / 4000**0.5).all()
    torch.testing.assert_close(draws.std(0), spread, rtol=0.05, atol=0)


def test_bad_exploration_settings():
    with pytest.raises(ValueError, match=r"nu=0.0 and lam=1.0 must be > 0"):
        make_agent("neural_ts", 3, 4, [0], 10, nu=0.0)
