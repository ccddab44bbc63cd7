"""The Deep Sea spread trace: what it counts, reproducibility, the fixed readout, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.deep_sea_spread import main, spread_trace

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
ABLATIONS = EXPERIMENTS / "archive" / "ablations"
INPUT = str(ABLATIONS / "deep_sea_input.toml")  # the sweep's IVIDQN at N = 8, 10, 12
READOUT = str(ABLATIONS / "deep_sea_readout.toml")  # N = 18, 22, 26


def test_trace_starts_at_the_prior_and_is_reproducible():
    first, again = (
        spread_trace(INPUT, "ivi_dqn", 8, seed=1, checkpoints=[0, 40], draws=32) for _ in range(2)
    )
    assert first == again
    start, later = first
    assert (start.episodes, start.good_episodes, start.furthest_diagonal) == (0, 0, 0)
    assert start.readout_rms_ratio == 1.0
    assert start.spread_unvisited > 0 and start.spread_visited > 0
    assert later.episodes == 40 and 0 <= later.good_episodes <= 40
    assert 1 <= later.furthest_diagonal <= 7
    assert later.readout_rms_ratio != 1.0  # the sweep's IVIDQN trains its readout


def test_a_fixed_readout_stays_at_its_prior():
    (row,) = spread_trace(READOUT, "ivi_dqn_fixed_readout", 18, seed=0, checkpoints=[12], draws=8)
    assert row.readout_rms_ratio == 1.0
    assert row.spread_unvisited > 0


def test_cli_prints_a_row_per_checkpoint_and_names_bad_input(capsys):
    main(["--config", INPUT, "--size", "8", "--checkpoints", "0,20", "--draws", "4"])
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("episodes") and len(out) == 4
    for argv, message in (
        (["--config", INPUT, "--size", "9"], "labelled 'ivi_dqn' and a Deep Sea of size 9"),
        (["--config", INPUT, "--size", "8", "--agent", "dqn"], "labelled 'dqn'"),
        (["--checkpoints", "20,10"], "--checkpoints '20,10': accepted: ascending"),
        (["--checkpoints", "x"], "--checkpoints 'x'"),
        (["--draws", "1"], "--draws 1 must be >= 2"),
        (["--seed", "-2"], "--seed -2 must be >= 0"),
    ):
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err


def test_trace_runs_on_the_shipped_sweep_config_with_a_zero_mean_prior(capsys):
    """experiments/deep_sea.toml's IVIDQN starts its means at 0: the readout has no prior
    rms to divide by (it used to raise ZeroDivisionError); the ratio is NaN, printed n/a."""
    sweep = str(EXPERIMENTS / "deep_sea.toml")
    (row,) = spread_trace(sweep, "ivi_dqn", 10, seed=0, checkpoints=[0], draws=4)
    assert row.readout_rms_ratio != row.readout_rms_ratio  # NaN
    assert row.spread_unvisited > 0
    main(["--config", sweep, "--size", "10", "--checkpoints", "0", "--draws", "4"])
    assert "n/a (mean 0)" in capsys.readouterr().out


def _deep_sea_ivi_configs() -> list[tuple[str, str, int]]:
    from ivi_rl.pipeline.rl_config import load_rl_config

    cases = []
    for path in sorted(EXPERIMENTS.rglob("*.toml")):
        try:
            config = load_rl_config(path)
        except Exception:  # a bandit config
            continue
        sizes = [e.kwargs["size"] for e in config.envs if e.id == "ivi_rl/DeepSea-v0"]
        agents = [a.label for a in config.agents if a.name in ("ivi_dqn", "ivi_dqn_variant")]
        if sizes and agents:
            cases.append((str(path.relative_to(EXPERIMENTS)), agents[0], min(sizes)))
    return cases


@pytest.mark.parametrize(("config", "agent", "size"), _deep_sea_ivi_configs())
def test_trace_starts_on_every_shipped_deep_sea_config(config, agent, size):
    (row,) = spread_trace(str(EXPERIMENTS / config), agent, size, seed=0, checkpoints=[0], draws=4)
    assert row.spread_unvisited >= 0 and row.episodes == 0
