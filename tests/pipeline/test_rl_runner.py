"""The RL runner end to end on a tiny Deep Sea sweep, and config validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ivi_rl.pipeline.bandit_config import ConfigError
from ivi_rl.pipeline.cli import main as cli
from ivi_rl.pipeline.configs import AgentSpec
from ivi_rl.pipeline.rl import run_rl
from ivi_rl.pipeline.rl_config import build_agent, load_rl_config, make_env

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
TINY = """
seeds = 2
workers = 1

[[envs]]
id = "ivi_rl/DeepSea-v0"
label = "deep_sea"
episodes = 30
eval_episodes = 3
eval_every = 50
sweep = { size = [4, 5] }

[[agents]]
name = "ivi_dqn"
learning_starts = 16
batch_size = 16
policy_kwargs = { net_arch = [16, 16] }
[[agents]]
name = "dqn"
learning_starts = 16
batch_size = 16
policy_kwargs = { net_arch = [16, 16] }
"""


def write(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "rl.toml"
    path.write_text(f'out = "{tmp_path / "out"}"\n' + text)
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rl")
    config = write(tmp)
    return tmp, config, run_rl(config, quiet=True)


def test_summary_and_event_files(finished):
    tmp, _, rows = finished
    assert {(r["env"], r["agent"]) for r in rows} == {
        (f"deep_sea_{n}", a) for n in (4, 5) for a in ("ivi_dqn", "dqn")
    }
    text = (tmp / "out" / "summary.md").read_text()
    assert "bsuite Deep Sea score" in text and (tmp / "out" / "solve.png").exists()
    acc = EventAccumulator(
        str(tmp / "out" / "tb" / "deep_sea_5" / "ivi_dqn" / "seed_1"), size_guidance={"scalars": 0}
    )
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {
        "regret/cumulative",
        "rollout/episode_return",
        "deep_sea/total_bad_episodes",
        "train/loss",
        "posterior/spread",
    } <= tags
    with np.load(tmp / "out" / "results" / "deep_sea_5" / "ivi_dqn" / "seed_1.npz") as z:
        regret = [e.value for e in acc.Scalars("regret/cumulative")]
        optimal = 0.99
        # the logged cumulative regret is the sum of (optimal - return) over episodes
        assert regret[-1] == pytest.approx(float(np.sum(optimal - z["returns"])), rel=1e-5)
        assert z["bad"].size == z["returns"].size
    import csv

    with open(tmp / "out" / "summary.csv") as f:
        table = {(r["env"], r["agent"]): r for r in csv.DictReader(f)}
    row = table["deep_sea_5", "ivi_dqn"]
    good = [
        (
            ~np.load(tmp / "out" / "results" / "deep_sea_5" / "ivi_dqn" / f"seed_{s}.npz")["bad"]
        ).sum()
        for s in (0, 1)
    ]
    assert float(row["good_episodes"]) == pytest.approx(np.mean(good))


def test_greedy_policy_is_evaluated_periodically_and_at_the_end(finished):
    """eval_episodes/eval_every: the deterministic policy's returns every 50 steps and at the
    end, stored, logged under SB3's eval/mean_reward and summarised (final and best)."""
    tmp, _, rows = finished
    row = next(r for r in rows if (r["env"], r["agent"]) == ("deep_sea_5", "ivi_dqn"))
    means = []
    for seed in (0, 1):
        path = tmp / "out" / "results" / "deep_sea_5" / "ivi_dqn" / f"seed_{seed}.npz"
        with np.load(path) as z:
            steps, returns, total = z["eval_steps"], z["eval_returns"], int(z["steps"])
        periodic = list(range(50, total + 1, 50))
        assert list(steps) == periodic + ([] if periodic[-1:] == [total] else [total])
        assert returns.shape == (len(steps), 3)
        # Deep Sea and the posterior-mean policy are deterministic: one return, three times
        assert np.all(returns == returns[:, :1])
        # a return is 0.99 (treasure) or a sum of move costs, -0.01/N each, at most N of them
        ok = np.isclose(returns, 0.99) | ((returns >= -0.01 - 1e-9) & (returns <= 0))
        assert ok.all()
        means.append(returns.mean(1))
    assert row["eval_return"] == pytest.approx(np.mean([m[-1] for m in means]))
    assert row["best_eval_return"] == pytest.approx(np.mean([m.max() for m in means]))
    acc = EventAccumulator(str(tmp / "out" / "tb" / "deep_sea_5" / "ivi_dqn" / "seed_1"))
    acc.Reload()
    logged = acc.Scalars("eval/mean_reward")
    assert [e.step for e in logged] == list(steps)
    np.testing.assert_allclose([e.value for e in logged], means[1], rtol=1e-6)


def test_resume_skips_finished_runs(finished):
    tmp, config, _ = finished
    stamp = (tmp / "out" / "results" / "deep_sea_4" / "dqn" / "seed_0.npz").stat().st_mtime_ns
    run_rl(config, quiet=True)
    assert (
        tmp / "out" / "results" / "deep_sea_4" / "dqn" / "seed_0.npz"
    ).stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda t: t.replace('name = "dqn"', 'name = "a2c"'),
            r"name='a2c' is not accepted; accepted: ivi_dqn",
        ),
        (
            lambda t: t.replace('id = "ivi_rl/DeepSea-v0"', 'id = "ivi_rl/DeepLake-v0"'),
            r"env deep_sea_4 \(ivi_rl/DeepLake-v0\)",
        ),
        (lambda t: t.replace("size = [4, 5]", "size = [1]"), r"size=1 must be an int >= 2"),
        (lambda t: t.replace("episodes = 30\n", ""), r"needs exactly one budget"),
        (
            lambda t: t.replace("eval_episodes = 3", "eval_episodes = -1"),
            r"envs\[0\].eval_episodes=-1 must be a positive int",
        ),
        (
            lambda t: t.replace("eval_episodes = 3\n", ""),
            r"envs\[0\] \(deep_sea\): eval_every needs eval_episodes > 0",
        ),
        (
            lambda t: t.replace("batch_size = 16\npolicy", "batch_size = 16\nbogus = 1\npolicy"),
            r"agent ivi_dqn \(ivi_dqn\).*bogus",
        ),
        (
            lambda t: t.replace('id = "ivi_rl/DeepSea-v0"', 'id = "Pendulum-v1"').replace(
                "sweep = { size = [4, 5] }", ""
            ),
            r"needs a Discrete action space",
        ),
        (
            lambda t: t.replace("[16, 16] }", '[16, 16], optimizer_class = "rmsprop" }', 1),
            r"agent ivi_dqn \(ivi_dqn\): policy_kwargs.optimizer_class='rmsprop' is not "
            r"accepted; accepted: adam, sgd",
        ),
        (
            lambda t: t.replace("[16, 16] }", "[16, 16], optimizer_class = [1] }", 1),
            r"optimizer_class=\[1\] is not accepted; accepted: adam, sgd",
        ),
    ],
)
def test_bad_rl_configs(tmp_path, edit, match):
    path = write(tmp_path, edit(TINY))
    with pytest.raises(ConfigError, match=match):
        run_rl(path, quiet=True)
    assert cli(["rl", str(path), "--quiet"]) == 2


@pytest.mark.parametrize("name", ["deep_sea.toml", "classic.toml"])
def test_shipped_rl_configs_validate(name):
    config = load_rl_config(EXPERIMENTS / name)
    assert {a.name for a in config.agents} == {"ivi_dqn", "bootstrapped_dqn", "noisy_dqn", "dqn"}
    if name == "deep_sea.toml":
        assert [e.kwargs["size"] for e in config.envs] == list(range(10, 51, 2))
        assert {e.episodes for e in config.envs} == {10_000}


# IVIDQN's settings in deep_sea_cpu*.toml until the sweep's agent became the linear one
EARLIER_IVI_DQN = {
    "learning_rate": 0.01,
    "buffer_size": 10000,
    "learning_starts": 128,
    "batch_size": 128,
    "train_freq": 1,
    "target_update_interval": 4,
    "policy_kwargs": {"net_arch": [200, 200], "cov": "diagonal", "input_scale": "sqrt_dim"},
}


def _earlier_sweep_agents() -> list[AgentSpec]:
    """deep_sea.toml's agents as they were when the ablations below were written and run."""
    agents = load_rl_config(EXPERIMENTS / "deep_sea.toml").agents
    earlier = AgentSpec("ivi_dqn", "ivi_dqn", EARLIER_IVI_DQN)
    return [earlier if a.name == "ivi_dqn" else a for a in agents]


def _baselines_and_earlier_ivi_dqn(config, full) -> None:
    """The baselines as in the sweep; IVIDQN with its settings of the runs RESULTS.md reports."""
    ivi = [a for a in config.agents if a.name == "ivi_dqn"]
    assert [a.settings for a in ivi] == [EARLIER_IVI_DQN]
    baselines = [a for a in config.agents if a.name != "ivi_dqn"]
    assert baselines == [a for a in full.agents if a.label in {b.label for b in baselines}]


def test_cpu_sweep_is_the_sweep_cut_to_its_first_sizes():
    """deep_sea_cpu.toml (the run RESULTS.md reports) must not drift from deep_sea.toml."""
    full, cpu = (load_rl_config(EXPERIMENTS / n) for n in ("deep_sea.toml", "deep_sea_cpu.toml"))
    assert [a.label for a in cpu.agents] == [a.label for a in full.agents]
    _baselines_and_earlier_ivi_dqn(cpu, full)
    assert cpu.envs == full.envs[: len(cpu.envs)]
    assert cpu.stop_when_solved and full.stop_when_solved


def test_cpu_extension_uses_the_sweeps_settings_for_its_agents():
    """deep_sea_cpu_large/_xl.toml: the next sweep sizes, IVIDQN and BootstrappedDQN."""
    full = load_rl_config(EXPERIMENTS / "deep_sea.toml")
    large = load_rl_config(EXPERIMENTS / "deep_sea_cpu_large.toml")
    assert [a.label for a in large.agents] == ["ivi_dqn", "bootstrapped_dqn"]
    _baselines_and_earlier_ivi_dqn(large, full)
    assert large.envs == full.envs[3:6]
    xl = load_rl_config(EXPERIMENTS / "deep_sea_cpu_xl.toml")
    assert xl.agents == large.agents and xl.envs == full.envs[6:11]


def test_cpu_ivi_sweep_is_the_whole_sweep_for_the_sweeps_ivi_dqn():
    """deep_sea_cpu_ivi.toml: every size and seed of deep_sea.toml, its IVIDQN alone."""
    full = load_rl_config(EXPERIMENTS / "deep_sea.toml")
    ivi = load_rl_config(EXPERIMENTS / "deep_sea_cpu_ivi.toml")
    assert ivi.agents == [a for a in full.agents if a.name == "ivi_dqn"]
    assert (ivi.envs, ivi.seeds, ivi.stop_when_solved) == (full.envs, full.seeds, True)


@pytest.mark.parametrize("name", ["ablations/deep_sea_prior.toml", "ablations/deep_sea_input.toml"])
def test_rl_ablation_configs_validate(name):
    config = load_rl_config(EXPERIMENTS / name)
    assert not config.stop_when_solved  # good episodes are counted over the whole budget


def test_deep_sea_18_ablation_varies_one_setting_of_the_sweeps_ivi_dqn_each():
    sweep = _earlier_sweep_agents()[0]
    ablation = load_rl_config(EXPERIMENTS / "ablations/deep_sea_18.toml")
    assert [e.kwargs["size"] for e in ablation.envs] == [18]
    for agent in ablation.agents:
        changed = {
            k
            for k in {**sweep.settings["policy_kwargs"], **agent.settings["policy_kwargs"]}
            if sweep.settings["policy_kwargs"].get(k) != agent.settings["policy_kwargs"].get(k)
        }
        assert len(changed) == 1, (agent.label, changed)
        rest = {k: v for k, v in agent.settings.items() if k != "policy_kwargs"}
        assert rest == {k: v for k, v in sweep.settings.items() if k != "policy_kwargs"}


def test_bench_rl_step_prints_every_agent_relative_to_dqn(capsys):
    from experiments.bench_rl_step import main

    main(["--steps", "20", "--repeats", "1"])
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert set(rows) >= {"ivi_dqn", "bootstrapped_dqn", "noisy_dqn", "dqn"}
    assert rows["dqn"][1] == "1.00"
    assert all(float(ms) > 0 for ms, _ in (rows[a] for a in ("ivi_dqn", "noisy_dqn")))
    with pytest.raises(SystemExit):
        main(["--size", "11"])
    with pytest.raises(SystemExit):
        main(["--config", "no/such.toml"])
    assert "config file no/such.toml does not exist" in capsys.readouterr().err


def test_cost_config_differs_from_the_sweep_only_in_width():
    """ablations/deep_sea_cost.toml: DQN (also with fused Adam) and IVIDQN at both widths,
    else the sweep's settings."""
    sweep = {a.name: a for a in _earlier_sweep_agents()}
    cost = load_rl_config(EXPERIMENTS / "ablations/deep_sea_cost.toml").agents
    widths = {}
    for agent in cost:
        base = sweep[agent.name].settings
        policy = {**agent.settings["policy_kwargs"]}
        widths.setdefault(agent.name, set()).add(tuple(policy.pop("net_arch")))
        if agent.label.endswith("_fused"):
            assert policy.pop("optimizer_kwargs") == {"fused": True}
        assert policy == {k: v for k, v in base["policy_kwargs"].items() if k != "net_arch"}
        assert {k: v for k, v in agent.settings.items() if k != "policy_kwargs"} == {
            k: v for k, v in base.items() if k != "policy_kwargs"
        }
    assert widths == {"dqn": {(50, 50), (200, 200)}, "ivi_dqn": {(50, 50), (200, 200)}}


@pytest.mark.parametrize(
    "name", ["ablations/cartpole.toml", "ablations/cartpole_lr.toml", "ablations/deep_sea_lr.toml"]
)
def test_more_ablation_configs_validate(name):
    assert load_rl_config(EXPERIMENTS / name).agents


def test_readout_ablation_changes_only_structure_rate_and_family():
    """ablations/deep_sea_readout.toml: the sweep's IVIDQN at N = 18, 22, 26 without biases
    and with frozen layers; besides that only the base rate or the family (rank 32) change."""
    sweep = _earlier_sweep_agents()[0]
    ablation = load_rl_config(EXPERIMENTS / "ablations/deep_sea_readout.toml")
    assert [e.kwargs["size"] for e in ablation.envs] == [18, 22, 26]
    allowed = {"cov", "rank"}
    for agent in ablation.agents:
        policy = dict(agent.settings["policy_kwargs"])
        assert policy.pop("bias") is False and policy.pop("frozen") in ("output", "hidden_output")
        base = dict(sweep.settings["policy_kwargs"])
        changed = {k for k in {**base, **policy} if base.get(k) != policy.get(k)}
        assert changed <= allowed, (agent.label, changed)
        assert changed in (set(), {"cov", "rank"}) and policy.get("rank", 32) == 32
        rates = {agent.settings["learning_rate"], sweep.settings["learning_rate"]}
        assert rates <= {0.01, 0.003}
        rest = {
            k: v for k, v in agent.settings.items() if k not in ("policy_kwargs", "learning_rate")
        }
        assert rest == {
            k: v for k, v in sweep.settings.items() if k not in ("policy_kwargs", "learning_rate")
        }


def test_frozen_cost_config_copies_its_agents_from_the_configs_it_names():
    """ablations/deep_sea_cost_frozen.toml times, at N = 18, the agents of deep_sea_cost.toml
    (DQN at widths 50 and 200), the sweep's IVIDQN and three of deep_sea_readout.toml."""
    bench = load_rl_config(EXPERIMENTS / "ablations/deep_sea_cost_frozen.toml")
    assert [e.kwargs["size"] for e in bench.envs] == [18]
    sources = [
        *load_rl_config(EXPERIMENTS / "ablations/deep_sea_cost.toml").agents,
        *_earlier_sweep_agents(),
        *load_rl_config(EXPERIMENTS / "ablations/deep_sea_readout.toml").agents,
    ]
    for agent in bench.agents:
        assert any(agent == source for source in sources), agent.label
    assert {a.label for a in bench.agents} >= {"dqn", "ivi_dqn", "ivi_dqn_fixed_readout"}


@pytest.mark.parametrize("name", ["ivi_dqn", "dqn"])
def test_a_config_names_its_optimizer(tmp_path, name):
    """TOML has no classes: policy_kwargs.optimizer_class = "sgd" builds torch's SGD with the
    given kwargs (and, for IVIDQN, its muP multipliers: SGD's input layer has fan_out x)."""
    text = TINY.replace(
        "[16, 16] }", '[16, 16], optimizer_class = "sgd", optimizer_kwargs = { momentum = 0.9 } }'
    )
    config = load_rl_config(write(tmp_path, text))
    agent = next(a for a in config.agents if a.name == name)
    model = build_agent(agent, make_env(config.envs[0]), seed=0, learning_rate=0.01)
    optimizer = model.policy.optimizer
    assert isinstance(optimizer, torch.optim.SGD)
    assert {g["momentum"] for g in optimizer.param_groups} == {0.9}
    if name == "ivi_dqn":
        assert max(g["lr"] for g in optimizer.param_groups) == pytest.approx(0.01 * 16)
    assert agent.settings["policy_kwargs"]["optimizer_class"] == "sgd"  # the config is untouched


def test_optimizer_ablation_changes_only_optimizer_rate_and_family():
    """ablations/deep_sea_optimizer.toml: the readout ablation's frozen IVIDQN at N = 22 with
    Adam or SGD (momentum 0.9) at two base rates, diagonal or rank 32; nothing else changes."""
    readout = load_rl_config(EXPERIMENTS / "ablations/deep_sea_readout.toml").agents
    base = next(a for a in readout if a.label == "ivi_dqn_fixed_hidden_readout_lowrank_32")
    ablation = load_rl_config(EXPERIMENTS / "ablations/deep_sea_optimizer.toml")
    assert [e.kwargs["size"] for e in ablation.envs] == [22]
    seen = set()
    for agent in ablation.agents:
        policy = dict(agent.settings["policy_kwargs"])
        optimizer = policy.pop("optimizer_class", "adam")
        if optimizer == "sgd":
            assert policy.pop("optimizer_kwargs") == {"momentum": 0.9}
        family = policy.pop("cov"), policy.pop("rank", None)
        expected = dict(base.settings["policy_kwargs"])
        del expected["cov"], expected["rank"]
        assert policy == expected, agent.label
        rest = {
            k: v for k, v in agent.settings.items() if k not in ("policy_kwargs", "learning_rate")
        }
        assert rest == {
            k: v for k, v in base.settings.items() if k not in ("policy_kwargs", "learning_rate")
        }
        seen.add((optimizer, agent.settings["learning_rate"], family))
    assert len(seen) == len(ablation.agents) == 6
    assert {f for *_, f in seen} == {("diagonal", None), ("lowrank", 32)}


def test_linear_ablation_is_the_sweeps_ivi_dqn_without_hidden_layers_or_biases():
    """ablations/deep_sea_linear.toml: IVIDQN linear in the one-hot cell (IVI's exact case),
    at the sweep's base rate and at 10x it; everything else is the sweep's."""
    sweep = _earlier_sweep_agents()[0]
    ablation = load_rl_config(EXPERIMENTS / "ablations/deep_sea_linear.toml")
    assert [e.kwargs["size"] for e in ablation.envs] == [10, 14, 18, 22]
    rates = set()
    for agent in ablation.agents:
        expected = {**sweep.settings["policy_kwargs"], "net_arch": [], "bias": False}
        assert agent.settings["policy_kwargs"] == expected
        rates.add(agent.settings["learning_rate"])
        rest = {
            k: v for k, v in agent.settings.items() if k not in ("policy_kwargs", "learning_rate")
        }
        assert rest == {
            k: v for k, v in sweep.settings.items() if k not in ("policy_kwargs", "learning_rate")
        }
    assert rates == {sweep.settings["learning_rate"], 10 * sweep.settings["learning_rate"]}


def test_marginalized_ablation_is_the_linear_ivi_dqn_under_sgd_with_either_estimator():
    linear = load_rl_config(EXPERIMENTS / "ablations/deep_sea_linear.toml").agents[0]
    ablation = load_rl_config(EXPERIMENTS / "ablations/deep_sea_marginalized.toml")
    assert [e.kwargs["size"] for e in ablation.envs] == [10, 14, 18, 22, 26, 30]
    estimators = []
    for agent in ablation.agents:
        settings = dict(agent.settings)
        estimators.append(settings.pop("output_noise", "sampled"))
        policy = dict(settings.pop("policy_kwargs"))
        assert policy.pop("optimizer_class") == "sgd"
        assert policy == linear.settings["policy_kwargs"]
        assert settings == {k: v for k, v in linear.settings.items() if k != "policy_kwargs"}
    assert estimators == ["sampled", "marginalized"]


def test_large_linear_ablation_runs_the_marginalized_agent_unchanged():
    marginalized = load_rl_config(EXPERIMENTS / "ablations/deep_sea_marginalized.toml").agents
    large = load_rl_config(EXPERIMENTS / "ablations/deep_sea_linear_large.toml")
    assert large.agents == [a for a in marginalized if a.label.endswith("_marginalized")]
    assert [e.kwargs["size"] for e in large.envs] == [30, 34, 40, 50]
    assert {e.episodes for e in large.envs} == {3000}
    cap = load_rl_config(EXPERIMENTS / "ablations/deep_sea_linear_cap.toml")
    assert cap.agents == large.agents
    assert [(e.kwargs["size"], e.episodes) for e in cap.envs] == [(40, 10_000), (50, 10_000)]


def _flat(settings: dict) -> dict:
    """An agent's settings with policy_kwargs merged in (defaults as the agent takes them)."""
    flat = {k: v for k, v in settings.items() if k != "policy_kwargs"}
    flat.update(settings.get("policy_kwargs", {}))
    flat.setdefault("output_noise", "sampled")
    flat.setdefault("optimizer_class", "adam")
    flat.setdefault("prior_mean", "random")
    return flat


def _changes(agent, base) -> dict:
    a, b = _flat(agent.settings), _flat(base.settings)
    return {k: a.get(k) for k in {**a, **b} if a.get(k) != b.get(k)}


def test_zero_mean_ablation_changes_one_training_choice_of_the_sweeps_ivi_dqn_each():
    """ablations/deep_sea_zero_mean.toml: the sweep's IVIDQN with sampled output noise or with
    Adam; with a random prior mean it is deep_sea_marginalized.toml's second agent."""
    sweep = load_rl_config(EXPERIMENTS / "deep_sea.toml").agents[0]
    ablation = load_rl_config(EXPERIMENTS / "ablations/deep_sea_zero_mean.toml")
    changes = [_changes(a, sweep) for a in ablation.agents]
    assert changes == [{"output_noise": "sampled"}, {"optimizer_class": "adam"}]
    marginalized = load_rl_config(EXPERIMENTS / "ablations/deep_sea_marginalized.toml")
    assert _changes(marginalized.agents[1], sweep) == {"prior_mean": "random"}
    assert (ablation.envs, ablation.seeds) == (marginalized.envs, marginalized.seeds)


def test_zero_mean_mlp_ablation_is_the_earlier_mlp_with_a_zero_prior_mean():
    """ablations/deep_sea_zero_mean_mlp.toml: the earlier sweep MLP with prior_mean 'zero',
    alone and trained like the sweep's linear agent (SGD, marginalized output noise)."""
    earlier = _earlier_sweep_agents()[0]
    ablation = load_rl_config(EXPERIMENTS / "ablations/deep_sea_zero_mean_mlp.toml")
    assert [_changes(a, earlier) for a in ablation.agents] == [
        {"prior_mean": "zero"},
        {"prior_mean": "zero", "optimizer_class": "sgd", "output_noise": "marginalized"},
    ]
    assert [e.kwargs["size"] for e in ablation.envs] == [18]
