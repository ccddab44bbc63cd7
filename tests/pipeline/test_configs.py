"""The shipped configs parse and validate (datasets that need files are checked when the
shared data folder is present)."""

from pathlib import Path

import pytest

from ivi_rl.pipeline.bandit_config import load_config

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_default_config_is_the_wheel_with_the_readme_agents():
    config = load_config(EXPERIMENTS / "default.toml")
    assert [d.name for d in config.datasets] == ["wheel"]
    assert {a.name for a in config.agents} == {
        "ivi_ts",
        "lin_full_post",
        "neural_linear",
        "neural_greedy",
        "uniform",
    }


@pytest.mark.parametrize(
    "name",
    [
        "ablations/ivi_settings.toml",
        "ablations/noise_aware.toml",
        "ablations/baselines.toml",
        "showdown_cpu.toml",
    ],
)
def test_ablation_configs_validate(name, shared_data):
    load_config(EXPERIMENTS / name, data_dir=str(shared_data))


def test_showdown_config_lists_the_protocol():
    text = (EXPERIMENTS / "showdown.toml").read_text()
    for dataset in ("mushroom", "statlog", "covertype", "financial", "jester", "adult", "census"):
        assert f'name = "{dataset}"' in text
    assert "seeds = 50" in text
