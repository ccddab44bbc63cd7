"""The IVI-TS variants of ivi_rl.contrib: noise-aware IVI-TS against plain IVI-TS, the
noise estimator, and full factors on small layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ivi_rl.agents.bandits import make_agent
from ivi_rl.contrib.neighbour_noise import NeighbourNoise

from ..agents.test_bandit_agents import run


def test_no_noise_or_fixed_noise_without_anchor_is_plain_ivi_ts():
    """Unit weights, no anchor, no perturbation: the same computation as plain IVI-TS, so the
    same decisions in float64."""
    plain, _ = run("ivi_ts", [0, 1], horizon=150, dtype=torch.float64)
    none, _ = run("ivi_ts_noise", [0, 1], horizon=150, dtype=torch.float64, noise="none")
    fixed, _ = run("ivi_ts_noise", [0, 1], horizon=150, dtype=torch.float64, anchor=False)
    np.testing.assert_array_equal(plain, none)
    np.testing.assert_array_equal(plain, fixed)


def test_the_anchor_keeps_the_parameters_near_the_prior_draw():
    """Same data stream, same draws: with the anchor at prior_scale 1 every trial ends closer
    to its prior draw than plain IVI-TS does."""
    distance = {}
    for anchor in (False, True):
        agent = make_agent(
            "ivi_ts_noise",
            2,
            3,
            [0, 1],
            200,
            anchor=anchor,
            prior_scale=1.0,
            hidden=[16],
            train_every=20,
            train_steps=30,
            batch_size=32,
        )
        gen = torch.Generator().manual_seed(0)
        for _ in range(200):
            ctx = torch.randn(2, 3, generator=gen)
            a = agent.act(ctx)
            agent.observe(ctx, a, ctx[:, 0] * (2 * a - 1) + torch.randn(2, generator=gen))
        distance[anchor] = sum(
            (p - agent.net.prior[k]).pow(2).flatten(1).sum(1) for k, p in agent.net.params.items()
        )
    assert (distance[True] < 0.5 * distance[False]).all(), distance


@pytest.mark.parametrize(
    "settings",
    [
        {"noise": "fixed", "perturb": True},
        {"noise": "estimated"},
        {"noise": "fixed", "slack": True, "reward_scaling": "scale"},
    ],
)
def test_noise_aware_trials_batched_decide_as_alone(settings):
    """The codes and the noise estimate are per trial: batching changes nothing (float64)."""
    batched, _ = run("ivi_ts_noise", [0, 1], horizon=150, dtype=torch.float64, **settings)
    for i, seed in enumerate([0, 1]):
        alone, _ = run("ivi_ts_noise", [seed], horizon=150, dtype=torch.float64, **settings)
        np.testing.assert_array_equal(batched[i], alone[0])


def test_perturbation_changes_decisions_and_bad_noise_settings_are_named():
    base, _ = run("ivi_ts_noise", [0], horizon=150)
    perturbed, _ = run("ivi_ts_noise", [0], horizon=150, perturb=True)
    assert not np.array_equal(base, perturbed)
    with pytest.raises(ValueError, match=r"prior_scale=0\.0"):
        make_agent("ivi_ts_noise", 2, 3, [0], 10, prior_scale=0.0)


def _fit_noisy_arm(seed: int, **settings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Arm 0 pays x_0 + noise of std 1 at 60 random 20-dimensional contexts (fewer data than
    a [32] network can interpolate), arm 1 pays 0; the arms are pulled alternately (not by
    the agent), so every agent sees the same data; one retrain of 1,000 steps at the end.
    Returns the posterior-mean network's arm-0 values at arm 0's contexts, their true means
    and the noisy rewards, in the agent's training units."""
    n, d = 120, 20
    agent = make_agent(
        "ivi_ts_noise" if settings else "ivi_ts",
        2,
        d,
        [seed],
        n,
        dtype=torch.float64,
        hidden=[32],
        train_every=n,
        train_steps=1000,
        batch_size=64,
        reward_scaling="scale",
        **settings,
    )
    gen = torch.Generator().manual_seed(seed)
    ctx = torch.randn(n, d, generator=gen, dtype=torch.float64)
    arm = torch.arange(n) % 2
    noise = torch.randn(n, generator=gen, dtype=torch.float64)
    reward = torch.where(arm == 0, ctx[:, 0] + noise, 0.0)
    for t in range(n):
        agent.observe(ctx[t : t + 1], arm[t : t + 1], reward[t : t + 1])
    std = agent.reward_moments()[1][0, 0]
    seen = arm == 0
    fitted = agent.mean_values(ctx[None, seen])[0, :, 0]
    return fitted, ctx[seen, 0] / std, reward[seen] / std


def test_noise_variables_average_the_noise_where_plain_ivi_interpolates_it():
    """Plain IVI-TS's mean network interpolates the noisy rewards (squared error to them
    under a tenth of that to the true means); with noise variables (noise='fixed', sigma = 1)
    it does not, and its squared error to the true means is under half of plain IVI's
    (0.20-0.29 of it on seeds 0-2), on two seeds."""
    for seed in (0, 1):
        plain, truth, noisy = _fit_noisy_arm(seed)
        slack, _, _ = _fit_noisy_arm(seed, slack=True)
        plain_err = (plain - truth).pow(2).mean()
        assert (plain - noisy).pow(2).mean() < 0.1 * plain_err
        assert (slack - noisy).pow(2).mean() > 0.5 * plain_err
        assert (slack - truth).pow(2).mean() < 0.5 * plain_err


def test_a_cold_retrain_restarts_the_noise_variables_too():
    """warm_start=false: every retrain starts from the prior draw and noise variables at 0,
    so zeroing them by hand before the second retrain changes nothing."""
    finals = []
    for zero_by_hand in (False, True):
        agent = make_agent(
            "ivi_ts_noise", 2, 3, [0], 40, slack=True, warm_start=False,
            hidden=[8], train_every=20, train_steps=20, batch_size=16,
        )  # fmt: skip
        gen = torch.Generator().manual_seed(0)
        for t in range(40):
            if zero_by_hand and t == 39:
                assert agent.slack[0, :20].abs().sum() > 0
                with torch.no_grad():
                    agent.slack.zero_()
            ctx = torch.randn(1, 3, generator=gen)
            agent.observe(ctx, torch.tensor([t % 2]), ctx[:, 0] + torch.randn(1, generator=gen))
        finals.append((agent.slack.detach().clone(), agent.net.params["model.layers.0.weight"]))
    assert torch.equal(finals[0][0], finals[1][0])
    assert torch.equal(finals[0][1], finals[1][1])


def test_slack_settings_are_checked():
    for bad in ({"slack": True, "noise": "none"}, {"slack": True, "perturb": True}):
        with pytest.raises(ValueError, match="slack=true needs"):
            make_agent("ivi_ts_noise", 2, 3, [0], 10, **bad)
    for rate in (0.0, -1.0):
        with pytest.raises(ValueError, match="slack_rate > 0"):
            make_agent("ivi_ts_noise", 2, 3, [0], 10, slack=True, slack_rate=rate)


def test_neighbour_noise_estimates_each_arms_noise_variance():
    """Arm 0: smooth mean, noise std 0.5; arm 1: smooth mean, no noise. 2,000 points in 2-D.
    Half the squared difference to the nearest earlier neighbour estimates 0.25 on arm 0
    (plus the mean's variation between neighbours) and about 0 on arm 1 (measured 0.002-
    0.003). Tolerance: over seeds 0-3 arm 0's estimate was 0.24-0.30 (s.d. 0.03, larger than
    independent terms would give: a point is the nearest neighbour of several later ones);
    0.1 is three such s.d."""
    gen = torch.Generator().manual_seed(0)
    n = 2000
    x = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    arms = torch.randint(0, 2, (n,), generator=gen)
    mean = torch.sin(3 * x[:, 0]) + x[:, 1]
    rewards = mean + 0.5 * torch.randn(n, generator=gen, dtype=torch.float64) * (arms == 0)
    est = NeighbourNoise(1, 2, window=n, device=torch.device("cpu"))
    for t in range(n):
        est.add(
            x[None, t],
            arms[None, t],
            rewards[None, t],
            x[None, :t],
            arms[None, :t],
            rewards[None, :t],
        )
    var = est.variance()[0]
    assert abs(var[0] - 0.25) < 0.1
    assert var[1] < 0.01


@pytest.mark.parametrize(
    ("arms", "dim", "full_below", "expected"),
    [
        (5, 2, 0, ["LowRankCovariance", None, "LowRankCovariance"]),
        (5, 2, 505, ["FullCovariance", None, "FullCovariance"]),  # (2+1)*100 and 101*5
        (5, 2, 504, ["FullCovariance", None, "LowRankCovariance"]),
        (2, 117, 1000, ["LowRankCovariance", None, "FullCovariance"]),  # 11,800 and 202
    ],
)
def test_small_layers_take_a_full_factor(arms, dim, full_below, expected):
    agent = make_agent("ivi_ts_full", arms, dim, [0], 10, full_below=full_below)
    layers = agent.net.first.layers
    assert [type(layer.cov).__name__ if layer.cov else None for layer in layers] == expected
    with pytest.raises(ValueError, match=r"full_below=-1 must be >= 0"):
        make_agent("ivi_ts_full", arms, dim, [0], 10, full_below=-1)


def test_full_factors_decide_the_same_batched_or_alone():
    batched, _ = run("ivi_ts_full", [0, 1], horizon=150, dtype=torch.float64, full_below=10_000)
    for i, seed in enumerate([0, 1]):
        alone, _ = run("ivi_ts_full", [seed], horizon=150, dtype=torch.float64, full_below=10_000)
        np.testing.assert_array_equal(batched[i], alone[0])
