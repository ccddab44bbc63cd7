"""The benchmarks a user runs (experiments/*.toml) run today's agents: every agent entry is
its class's defaults unless it says why (a baseline's published tuning), and there are few
enough to read. The archive (experiments/archive/) and the selections (experiments/ablations/)
still parse on today's code."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivi_rl.pipeline import bandit_config
from ivi_rl.pipeline.configs import load_toml_config, read_config
from ivi_rl.pipeline.rl_config import agent_on, load_rl_config

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
BENCHMARKS = sorted(EXPERIMENTS.glob("*.toml"))
ARCHIVE = sorted((EXPERIMENTS / "archive").rglob("*.toml"))
"""Configs and the bases they start from (a base alone need not be runnable)."""
ABLATIONS = sorted((EXPERIMENTS / "ablations").glob("*.toml"))
"""The selections behind today's defaults, on seeds no benchmark reports."""


def _agents(path: Path):
    """Every agent of a config as it runs (on each env, for RL configs); a bandit config's
    data files are not read (the full Showdown's are not all here)."""
    if "envs" in read_config(path):
        config = load_rl_config(path)
        return [agent_on(a, e) for e in config.envs for a in config.agents]
    return load_toml_config(path, bandit_config._parse, lambda config: None, {}).agents


def test_the_benchmarks_are_few():
    assert 5 <= len(BENCHMARKS) <= 8, [p.name for p in BENCHMARKS]


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_benchmark_runs_todays_defaults_unless_it_says_why(path):
    for agent in _agents(path):
        assert not agent.settings or agent.why, (
            f"{path.name}: agent {agent.label!r} sets {sorted(agent.settings)} without a 'why'"
        )


def test_a_config_that_departs_from_the_defaults_without_why_is_caught(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[[datasets]]\nname = "wheel"\n[[agents]]\nname = "ivi_ts"\nlr = 0.1\n')
    (agent,) = _agents(config)
    assert agent.settings == {"lr": 0.1} and agent.why == ""
    config.write_text(config.read_text() + 'why = "a step-size study"\n')
    (agent,) = _agents(config)
    assert agent.settings == {"lr": 0.1} and agent.why == "a step-size study"


@pytest.mark.parametrize("path", ARCHIVE + ABLATIONS, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_every_archived_config_still_parses(path):
    raw = read_config(path)
    if "envs" in raw or "datasets" in raw:  # else a base that others start from
        assert _agents(path)
