"""The bandit runner end to end on a tiny config."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ivi_rl.pipeline.bandit import run_bandit
from ivi_rl.pipeline.bandit_config import ConfigError, load_config
from ivi_rl.pipeline.bandit_runner import TAGS, plan, result_path
from ivi_rl.pipeline.cli import main as cli

TINY = """
horizon = 120
seeds = 2
log_points = 12
workers = 1

[[datasets]]
name = "wheel"
label = "wheel_0.7"
delta = 0.7

[[agents]]
name = "uniform"
[[agents]]
name = "lin_full_post"
[[agents]]
name = "ivi_ts"
hidden = [16, 16]
train_every = 20
train_steps = 10
batch_size = 32
"""


def write_config(tmp_path: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'out = "{tmp_path / "out"}"\n' + text)
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    config = write_config(tmp)
    rows = run_bandit(config, quiet=True)
    return tmp, config, rows


def _tags(run: Path) -> tuple[set[str], set[str]]:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return set(acc.Tags()["scalars"]), set(acc.Tags()["histograms"])


def test_every_run_holds_the_common_tags(finished):
    tmp, _, _ = finished
    for agent in ("uniform", "lin_full_post", "ivi_ts"):
        for seed in (0, 1):
            scalars, histograms = _tags(tmp / "out" / "tb" / "wheel_0.7" / agent / f"seed_{seed}")
            common = {
                "regret/cumulative",
                "regret/instant",
                "reward/cumulative",
                "actions/optimal_fraction",
            }
            assert common <= scalars
            if agent == "ivi_ts":  # trained and a posterior agent
                assert {"train/loss", "posterior/spread"} <= scalars
                assert "posterior/spread_per_arm" in histograms
            if agent == "lin_full_post":
                assert "posterior/spread" in scalars and "train/loss" not in scalars
        mean_scalars, _ = _tags(tmp / "out" / "tb" / "wheel_0.7" / agent / "mean")
        assert "regret/cumulative" in mean_scalars
    assert set(TAGS) >= common


def test_logged_regret_matches_the_result_file_and_summary(finished):
    tmp, _, _ = finished
    acc = EventAccumulator(
        str(tmp / "out" / "tb" / "wheel_0.7" / "ivi_ts" / "seed_1"), size_guidance={"scalars": 0}
    )
    acc.Reload()
    events = acc.Scalars("regret/cumulative")
    with np.load(result_path(tmp / "out", "wheel_0.7", "ivi_ts", 1)) as z:
        np.testing.assert_allclose([e.value for e in events], z["cumulative_regret"], rtol=1e-6)
        assert [e.step for e in events] == list(z["log_steps"]) and events[-1].step == 120
        assert z["cumulative_regret"][-1] == pytest.approx(z["regret"].sum(), rel=1e-5)
    with open(tmp / "out" / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["agent"] for r in table] == ["uniform", "lin_full_post", "ivi_ts"]
    uniform = next(r for r in table if r["agent"] == "uniform")
    assert float(uniform["normalized"]) == pytest.approx(100.0)
    assert {r["rank"] for r in table} == {"1", "2", "3"}
    assert set(table[0]) >= {
        "dataset",
        "agent",
        "seeds",
        "regret_mean",
        "regret_se",
        "normalized",
        "rank",
        "wall_s",
    }
    assert (tmp / "out" / "regret.png").stat().st_size > 10_000
    assert "mean rank" in (tmp / "out" / "summary.md").read_text()


def test_resume_skips_finished_runs_and_redoes_broken_ones(finished):
    tmp, config_path, _ = finished
    config = load_config(config_path)
    assert plan(config) == []  # everything finished
    done = result_path(tmp / "out", "wheel_0.7", "lin_full_post", 0)
    mtime = done.stat().st_mtime_ns
    broken = result_path(tmp / "out", "wheel_0.7", "ivi_ts", 1)
    broken.write_bytes(b"half a file")  # as if killed mid-write without atomic writes
    todo = plan(config)
    assert [(t.agent.label, t.seeds) for t in todo] == [("ivi_ts", (1,))]
    run_bandit(config_path, quiet=True)
    assert done.stat().st_mtime_ns == mtime and plan(config) == []
    # a changed setting changes the fingerprint: that agent's runs are redone
    changed = load_config(
        write_config(tmp, TINY.replace("train_steps = 10", "train_steps = 11"), "c.toml")
    )
    assert {t.agent.label for t in plan(changed)} == {"ivi_ts"}


def test_equal_seeds_give_identical_curves_vectorized_or_not(tmp_path, finished):
    tmp, _, _ = finished
    config = write_config(tmp_path)
    run_bandit(config, quiet=True, vectorize=False)
    for agent in ("uniform", "lin_full_post", "ivi_ts"):
        for seed in (0, 1):
            with (
                np.load(result_path(tmp_path / "out", "wheel_0.7", agent, seed)) as a,
                np.load(result_path(tmp / "out", "wheel_0.7", agent, seed)) as b,
            ):
                # float32 batched matmuls may differ in the last bits from single ones;
                # the curves agree to float32 rounding
                np.testing.assert_allclose(a["regret"], b["regret"], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda t: t.replace('name = "ivi_ts"', 'name = "ivi_tss"'),
            r"agents\[2\] \(ivi_tss\): agent='ivi_tss' is not accepted",
        ),
        (
            lambda t: t.replace('name = "wheel"', 'name = "wheels"'),
            r"datasets\[0\] \(wheel_0.7\): dataset='wheels' is not accepted",
        ),
        (
            lambda t: t.replace("seeds = 2", 'seeds = "two"'),
            r"seeds='two' must be a positive count",
        ),
        (lambda t: t.replace("horizon = 120", "horizon = 0"), r"horizon=0 must be a positive int"),
        (
            lambda t: t.replace("train_steps = 10", "train_steps = 1.5"),
            r"train_steps=1.5 is not accepted; expected an int",
        ),
        (
            lambda t: t.replace("delta = 0.7", "delta = 1.7"),
            r"delta=1.7 must be in the open interval",
        ),
        (
            lambda t: t + '\n[[datasets]]\nname = "mushroom"\n',
            r"datasets\[1\] \(mushroom\): data file .*agaricus-lepiota.data is missing",
        ),
        (
            lambda t: t.replace("log_points = 12", "log_points = 12\nseed = 3"),
            r"unknown keys \['seed'\]",
        ),
        (
            lambda t: t + '\n[[agents]]\nname = "uniform"\n',
            r"agents labels \['uniform'\] appear twice",
        ),
    ],
)
def test_bad_configs_fail_before_any_run(tmp_path, monkeypatch, edit, match):
    monkeypatch.setenv("IVI_RL_DATA", str(tmp_path / "no-data"))
    monkeypatch.setattr("ivi_rl.envs.data.urllib.request.urlopen", _offline)
    config = write_config(tmp_path, edit(TINY))
    with pytest.raises(ConfigError, match=match):
        run_bandit(config, quiet=True)
    assert not (tmp_path / "out").exists()
    assert cli(["bandit", str(config), "--quiet"]) == 2


def _offline(*args, **kwargs):
    raise OSError("network disabled in this test")


def test_cli_overrides(tmp_path):
    config = write_config(tmp_path)
    assert (
        cli(
            [
                "bandit",
                str(config),
                "--quiet",
                "--seeds",
                "1",
                "--horizon",
                "40",
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 0
    )
    with open(tmp_path / "o2" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["seeds"] for r in rows} == {"1"}
    with np.load(result_path(tmp_path / "o2", "wheel_0.7", "uniform", 0)) as z:
        assert z["regret"].shape == (40,)
    assert os.path.exists(tmp_path / "o2" / "tb" / "wheel_0.7" / "uniform" / "seed_0")


@pytest.mark.cuda
def test_tiny_config_runs_on_cuda(tmp_path, cuda_device):
    rows = run_bandit(write_config(tmp_path), quiet=True, device="cuda", seeds=2)
    assert {r["agent"] for r in rows} == {"uniform", "lin_full_post", "ivi_ts"}


def test_bench_trials_prints_throughput_and_speedup(capsys):
    from experiments.bench_trials import main as bench

    speedup = bench(["--dataset", "wheel", "--agent", "uniform", "--horizon", "30", "--seeds", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"speedup {speedup:.2f}" and speedup > 0
    assert any("one-at-a-time" in line and "agent-steps/s" in line for line in lines)
    assert any("vectorized" in line and "agent-steps/s" in line for line in lines)


def _mean_run(tmp: Path, dataset: str, agent: str) -> EventAccumulator:
    acc = EventAccumulator(
        str(tmp / "out" / "tb" / dataset / agent / "mean"), size_guidance={"tensors": 0}
    )
    acc.Reload()
    return acc


def test_tensorboard_compare_layout_has_one_margin_chart_per_dataset(finished):
    """Read back with TensorBoard's own readers: the custom-scalars layout names one Margin
    chart per dataset over the mean runs' compare tags, whose values are mean ± s.e. of the
    seeds' curves."""
    from tensorboard.plugins.custom_scalar import layout_pb2

    from ivi_rl.pipeline.tb_compare import compare_tags

    tmp, _, _ = finished
    layouts = []
    for agent in ("uniform", "lin_full_post", "ivi_ts"):
        acc = _mean_run(tmp, "wheel_0.7", agent)
        if "custom_scalars__config__" in acc.Tags()["tensors"]:
            proto = acc.Tensors("custom_scalars__config__")[0].tensor_proto
            layouts.append(layout_pb2.Layout.FromString(proto.string_val[0]))
    assert len(layouts) == 1
    (category,) = layouts[0].category
    assert category.title.startswith("compare")
    (chart,) = category.chart
    assert chart.title == "wheel_0.7"
    series = chart.margin.series[0]
    assert (series.value, series.lower, series.upper) == compare_tags(
        "wheel_0.7", "cumulative_regret"
    )
    acc = _mean_run(tmp, "wheel_0.7", "ivi_ts")
    mean, lower, upper = (
        [e.value for e in acc.Scalars(t)] for t in compare_tags("wheel_0.7", "cumulative_regret")
    )
    curves = []
    for seed in (0, 1):
        with np.load(result_path(tmp / "out", "wheel_0.7", "ivi_ts", seed)) as z:
            curves.append(z["cumulative_regret"])
    curves = np.array(curves)
    se = curves.std(0, ddof=1) / np.sqrt(2)
    np.testing.assert_allclose(mean, curves.mean(0), rtol=1e-6)
    np.testing.assert_allclose(np.array(upper) - np.array(lower), 2 * se, rtol=1e-5, atol=1e-4)


def test_tensorboard_hparams_list_each_agents_settings_and_final_numbers(finished):
    from tensorboard.plugins.hparams import plugin_data_pb2

    tmp, _, rows = finished
    row = next(r for r in rows if r["agent"] == "ivi_ts")
    acc = _mean_run(tmp, "wheel_0.7", "ivi_ts")
    content = acc.PluginTagToContent("hparams")
    starts = [plugin_data_pb2.HParamsPluginData.FromString(c) for c in content.values()]
    info = next(d.session_start_info for d in starts if d.HasField("session_start_info"))
    assert info.hparams["agent"].string_value == "ivi_ts"
    assert info.hparams["train_steps"].number_value == 10  # set in the config
    assert info.hparams["lr"].number_value == 0.01  # a default
    assert info.hparams["dataset"].string_value == "wheel_0.7"
    assert acc.Scalars("final/regret")[0].value == pytest.approx(row["regret_mean"], rel=1e-6)
    assert acc.Scalars("final/rank")[0].value == row["rank"]


def test_the_front_door_gives_the_runners_results(finished):
    """agents.bandits.run_agent on the same problem, seeds and settings reproduces the
    benchmark runner's stored regret exactly (one loop, agents.bandits.play, serves both)."""
    from ivi_rl import envs
    from ivi_rl.agents.bandits import run_agent

    tmp, _, _ = finished
    settings = {"hidden": [16, 16], "train_every": 20, "train_steps": 10, "batch_size": 32}
    result = run_agent(
        "ivi_ts", envs.make_problem("wheel", delta=0.7), horizon=120, seeds=[0, 1], **settings
    )
    for i, seed in enumerate((0, 1)):
        with np.load(result_path(tmp / "out", "wheel_0.7", "ivi_ts", seed)) as z:
            np.testing.assert_allclose(result.regret[i], z["regret"], rtol=1e-6)
