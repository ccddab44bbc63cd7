"""IVI-TS's stable step (``stable_lr``, ivi_rl.stability): it binds only where a step is near
SGD-with-momentum's bound, changes nothing elsewhere, keeps batched = alone, and lets the
defaults finish data built to break a fixed learning rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ivi_rl import envs
from ivi_rl.agents.bandits import make_agent, play
from ivi_rl.pipeline import run_bandit

SMALL = {"hidden": [32, 32], "train_every": 25, "batch_size": 128}


def _play(problem, seeds, horizon, dtype=torch.float32, **settings):
    """Actions [S, n], the losses and the step factors of every retrain."""
    trials = [problem.sample_trial(horizon, seed=s) for s in seeds]
    agent = make_agent(
        "ivi_ts",
        problem.num_actions,
        problem.context_dim,
        seeds,
        horizon,
        dtype=dtype,
        **settings,
    )
    losses, scales = [], []
    train = agent._train

    def recording():
        loss = train()
        losses.append(loss.clone())
        if agent.last_step_scale is not None:
            scales.append(agent.last_step_scale.clone())
        return loss

    agent._train = recording
    contexts = torch.tensor(np.stack([t.contexts for t in trials]), dtype=dtype)
    rewards = torch.tensor(np.stack([t.rewards for t in trials]), dtype=dtype)
    actions = play(agent, contexts, rewards)
    return actions, torch.stack(losses), torch.stack(scales) if scales else None


def test_where_no_bound_binds_the_stable_step_changes_nothing():
    """The wheel at the default network: every retrain's factor is exactly 1, and decisions
    and losses equal those of plain IVI bit for bit."""
    wheel = envs.make_problem("wheel", delta=0.5)
    actions, losses, scales = _play(wheel, [0, 1], 300)
    plain_actions, plain_losses, _ = _play(wheel, [0, 1], 300, stable_lr=False)
    assert (scales == 1.0).all()
    assert torch.equal(actions, plain_actions) and torch.equal(losses, plain_losses)


def test_a_binding_stable_step_decides_the_same_batched_or_alone():
    problem = envs.make_problem("stress", kind="feature_scale")
    batched, _, scales = _play(problem, [0, 1, 2], 150, dtype=torch.float64, **SMALL)
    assert (scales < 1).any()
    for i, seed in enumerate([0, 1, 2]):
        alone, _, _ = _play(problem, [seed], 150, dtype=torch.float64, **SMALL)
        assert torch.equal(batched[i], alone[0])


STRESS = """
horizon = 500
seeds = 20
log_points = 10
workers = 2
{datasets}
[[agents]]
name = "ivi_ts"
[[agents]]
name = "uniform"
"""


@pytest.mark.slow
def test_the_defaults_finish_data_built_to_break_a_fixed_step(tmp_path):
    """The four stress kinds (envs.stress), 20 seeds each, IVI-TS at its defaults: no trial
    diverges (run_bandit would raise DivergedTrials) and every kind's regret is below 80% of
    Uniform's. Without the stable step 6 of these 80 trials stop with a non-finite loss
    (27 of 80 at 800 steps)."""
    datasets = "".join(
        f'[[datasets]]\nname = "stress"\nlabel = "{k}"\nkind = "{k}"\n' for k in envs.STRESS_KINDS
    )
    config = tmp_path / "stress.toml"
    config.write_text(f'out = "{tmp_path / "out"}"\n' + STRESS.format(datasets=datasets))
    rows = run_bandit(config, quiet=True)
    found = {r["dataset"]: r for r in rows if r["agent"] == "ivi_ts"}
    assert sorted(found) == sorted(envs.STRESS_KINDS)
    for row in found.values():
        assert (row["seeds"], row["diverged"]) == (20, 0)
        assert row["normalized"] < 80
