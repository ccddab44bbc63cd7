"""Crash safety end to end: a bandit or RL run killed with SIGKILL and resumed, and the same
config in process (and for bandits with --no-vectorize), store exactly the arrays of an
uninterrupted run."""

from __future__ import annotations

import pytest

from experiments.crash_check import main

CONFIG = """
horizon = 400
seeds = 2
log_points = 8
workers = 1
[[datasets]]
name = "wheel"
delta = 0.7
[[agents]]
name = "lin_full_post"
[[agents]]
name = "neural_greedy"
hidden = [16, 16]
train_every = 20
train_steps = 10
batch_size = 32
[[agents]]
name = "ivi_ts"
hidden = [16, 16]
train_every = 20
train_steps = 10
batch_size = 32
"""


@pytest.mark.slow
def test_killed_and_resumed_and_unvectorized_runs_equal_an_uninterrupted_one(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    assert main(["--config", str(config), "--kills", "1", "--seed", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert all(line.endswith("every array identical") for line in lines[1:])


RL_CONFIG = """
seeds = 2
[[envs]]
id = "ivi_rl/DeepSea-v0"
episodes = 60
sweep = { size = [5, 6] }
[[agents]]
name = "ivi_dqn"
learning_starts = 16
batch_size = 16
policy_kwargs = { net_arch = [16, 16] }
[[agents]]
name = "bootstrapped_dqn"
learning_starts = 16
batch_size = 16
"""


@pytest.mark.slow
def test_killed_and_resumed_and_in_process_rl_runs_equal_an_uninterrupted_one(tmp_path, capsys):
    config = tmp_path / "rl.toml"
    config.write_text(RL_CONFIG)
    assert main(["--config", str(config), "--kills", "1", "--seed", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(line.endswith("every array identical") for line in lines[1:])
