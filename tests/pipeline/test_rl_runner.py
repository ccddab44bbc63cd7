"""The RL runner end to end on a tiny Deep Sea sweep, and config validation."""

from __future__ import annotations

import dataclasses
import shutil
from operator import itemgetter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ivi_rl import envs
from ivi_rl.pipeline import rl_report, rl_runner
from ivi_rl.pipeline.bandit_config import ConfigError
from ivi_rl.pipeline.cli import main as cli
from ivi_rl.pipeline.configs import read_config
from ivi_rl.pipeline.rl import run_rl
from ivi_rl.pipeline.rl_config import RLTask, build_agent, env_kwargs, load_rl_config, make_env

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
    assert "| agent | bsuite experiment | score |" in text and (tmp / "out" / "solve.png").exists()
    scores = {
        line.split(" | ")[0][2:]: float(line.split(" | ")[2][:-2])
        for line in text.splitlines()
        if " | deep_sea | " in line
    }
    assert set(scores) == {"ivi_dqn", "dqn"} and all(0 <= s <= 1 for s in scores.values())
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
    stored = [
        np.load(tmp / "out" / "results" / "deep_sea_5" / "ivi_dqn" / f"seed_{s}.npz")
        for s in (0, 1)
    ]
    good = [(~z["bad"]).sum() for z in stored]
    treasures = [np.sum(np.diff(z["denoised"], prepend=0.0) > 0) for z in stored]
    assert float(row["good_episodes"]) == pytest.approx(np.mean(good))
    assert float(row["treasures"]) == pytest.approx(np.mean(treasures))
    # the deterministic chain: an episode is not bad exactly when it reaches the treasure
    assert good == treasures


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


def test_stochastic_deep_sea_is_solved_by_bsuites_stochastic_rule(tmp_path):
    """threshold 0.8 counting episodes >= 100, where the deterministic rule (0.9 from the
    first episode) would have stopped the run much earlier."""
    text = TINY.replace("episodes = 30", "episodes = 400\ndeterministic = false")
    text = text.replace("sweep = { size = [4, 5] }", "sweep = { size = [4] }")
    text = text.replace("seeds = 2", "seeds = 1\nstop_when_solved = true")
    config = write(tmp_path, text.split('[[agents]]\nname = "dqn"')[0])
    run_rl(config, quiet=True)
    run = np.load(tmp_path / "out" / "results" / "deep_sea_4" / "ivi_dqn" / "seed_0.npz")
    bad, solved = run["bad"].tolist(), int(run["solved"])
    assert solved >= 100 and len(bad) == solved
    assert envs.solve_episode(bad, threshold=0.8, min_episode=100) == solved
    assert envs.solve_episode(bad) < 100


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
        (
            lambda t: t.replace("[16, 16] }", '[16, 16], activation_fn = "sigmoid" }', 1),
            r"policy_kwargs.activation_fn='sigmoid' is not accepted; accepted: relu, tanh, gelu",
        ),
        *[
            (
                lambda t, bad=bad: t.replace(
                    "batch_size = 16\npolicy", f"batch_size = 16\nlearning_rate = {bad}\npolicy"
                ),
                r"agent ivi_dqn \(ivi_dqn\): learning_rate=.* is not accepted; accepted: a "
                r"number, or 'lin_X' with a number X > 0",
            )
            for bad in ['"lin_x"', '"lin_-0.1"', '"lin_inf"', '"cos_0.1"', "[0.1]", "true"]
        ],
    ],
)
def test_bad_rl_configs(tmp_path, edit, match):
    path = write(tmp_path, edit(TINY))
    with pytest.raises(ConfigError, match=match):
        run_rl(path, quiet=True)
    assert cli(["rl", str(path), "--quiet"]) == 2


RL_CONFIGS = sorted(
    str(p.relative_to(EXPERIMENTS)) for p in EXPERIMENTS.rglob("*.toml") if "envs" in read_config(p)
)


@pytest.mark.parametrize("name", RL_CONFIGS)
def test_every_shipped_rl_config_validates(name):
    config = load_rl_config(EXPERIMENTS / name)
    assert config.agents and config.envs


@pytest.mark.parametrize(
    ("name", "agents"),
    [
        ("deep_sea.toml", {"ivi_dqn", "bootstrapped_dqn", "dqn"}),
        ("classic.toml", {"ivi_dqn", "dqn"}),
    ],
)
def test_shipped_rl_configs_validate(name, agents):
    config = load_rl_config(EXPERIMENTS / name)
    assert {a.name for a in config.agents} == agents
    if name == "deep_sea.toml":
        sizes = list(range(10, 51, 2))
        assert [e.kwargs["size"] for e in config.envs] == sizes + sizes
        assert [e.id for e in config.envs] == ["ivi_rl/DeepSea-v0"] * 21 + [
            "ivi_rl/DeepSeaStochastic-v0"
        ] * 21
        assert {e.episodes for e in config.envs} == {10_000}


def test_bench_rl_step_prints_every_agent_relative_to_dqn(capsys):
    from experiments.bench_rl_step import main

    main(["--steps", "20", "--repeats", "1"])
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert set(rows) >= {"ivi_dqn", "bootstrapped_dqn", "dqn"}  # deep_sea.toml's agents
    assert rows["dqn"][1] == "1.00"
    for agent in ("ivi_dqn", "bootstrapped_dqn"):
        ms, ratio = map(float, rows[agent])
        assert ms > 0 and ratio == pytest.approx(ms / float(rows["dqn"][0]), abs=0.01)
    with pytest.raises(SystemExit):
        main(["--size", "11"])
    with pytest.raises(SystemExit):
        main(["--config", "no/such.toml"])
    assert "config file no/such.toml does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["ivi_dqn", "dqn"])
def test_a_config_names_its_optimizer(tmp_path, name):
    """TOML has no classes: policy_kwargs.optimizer_class = "sgd" builds torch's SGD with the
    given kwargs (and, for IVIDQN, its muP multipliers: SGD's input layer has fan_out x)."""
    text = TINY.replace(
        "[16, 16] }", '[16, 16], optimizer_class = "sgd", optimizer_kwargs = { momentum = 0.9 } }'
    )
    text += '[defaults.ivi_dqn]\npolicy_kwargs = { parametrization = "mup" }\n'
    config = load_rl_config(write(tmp_path, text))
    agent = next(a for a in config.agents if a.name == name)
    model = build_agent(agent, make_env(config.envs[0]), seed=0, learning_rate=0.01)
    optimizer = model.policy.optimizer
    assert isinstance(optimizer, torch.optim.SGD)
    assert {g["momentum"] for g in optimizer.param_groups} == {0.9}
    if name == "ivi_dqn":
        assert max(g["lr"] for g in optimizer.param_groups) == pytest.approx(0.01 * 16)
    assert agent.settings["policy_kwargs"]["optimizer_class"] == "sgd"  # the config is untouched


@pytest.mark.parametrize("name", ["ivi_dqn", "dqn"])
def test_a_config_names_its_activation(tmp_path, name):
    """policy_kwargs.activation_fn = "tanh" builds every hidden layer with torch's Tanh."""
    config = load_rl_config(
        write(tmp_path, TINY.replace("[16, 16] }", '[16, 16], activation_fn = "tanh" }'))
    )
    agent = next(a for a in config.agents if a.name == name)
    model = build_agent(agent, make_env(config.envs[0]), seed=0)
    assert model.policy.activation_fn is torch.nn.Tanh
    obs = torch.zeros(1, *make_env(config.envs[0]).observation_space.shape)
    if name == "ivi_dqn":
        assert {net.activation.value for net in model.policy.q_net.q_net.nets} == {"tanh"}
    else:
        assert any(isinstance(m, torch.nn.Tanh) for m in model.policy.q_net.modules())
    assert model.policy.q_net(obs).shape == (1, 2)


@pytest.mark.parametrize("name", ["ivi_dqn", "dqn"])
def test_a_config_names_a_linear_learning_rate(tmp_path, name):
    """learning_rate = "lin_0.02" (the RL Zoo's notation) falls linearly from 0.02 at the
    first update to 0 at the end of learn's budget; it is saved and loaded with the model."""
    text = TINY.replace(
        "batch_size = 16\npolicy",
        'batch_size = 16\nlearning_rate = "lin_0.02"\ntrain_freq = 1\npolicy',
    )
    config = load_rl_config(write(tmp_path, text))
    agent = next(a for a in config.agents if a.name == name)
    model = build_agent(agent, make_env(config.envs[0]), seed=0)
    schedule = model.lr_schedule
    assert [schedule(p) for p in (1.0, 0.75, 0.25, 0.0)] == pytest.approx([0.02, 0.015, 0.005, 0])
    group = model.policy.optimizer.param_groups[0]
    multiplier = group.get("lr_multiplier", 1.0)  # IVIDQN's muP multiplier
    seen = []  # the step in force at each environment step (set by the previous update)
    model.learn(200, callback=lambda *_: seen.append(group["lr"] / multiplier) or True)
    # an update follows each step after warm-up (16): step t's update has 1 - t/200 left
    remaining = 1 - np.arange(17, 200) / 200
    assert seen[17:] == pytest.approx(0.02 * remaining, abs=1e-12)
    assert group["lr"] == 0.0  # the last update, at the end of the budget
    model.save(tmp_path / "model")
    loaded = type(model).load(tmp_path / "model")
    assert loaded.lr_schedule(0.5) == pytest.approx(0.01)
    assert agent.settings["learning_rate"] == "lin_0.02"  # the config is untouched


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


def test_tensorboard_compare_view_per_env_with_hparams(finished):
    """Read back with TensorBoard's readers: one layout with a return chart per env and a
    cumulative-regret chart per Deep Sea size, over the mean runs' compare tags, whose values
    are mean ± s.e. over seeds; hparams list the agent's settings and final numbers."""
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2

    from ivi_rl import envs
    from ivi_rl.pipeline.tb_compare import compare_tags

    tmp, _, rows = finished
    layouts = []
    for env in ("deep_sea_4", "deep_sea_5"):
        for agent in ("ivi_dqn", "dqn"):
            path = tmp / "out" / "tb" / env / agent / "mean"
            acc = EventAccumulator(str(path), size_guidance={"tensors": 0, "scalars": 0})
            acc.Reload()
            if "custom_scalars__config__" in acc.Tags()["tensors"]:
                proto = acc.Tensors("custom_scalars__config__")[0].tensor_proto
                layouts.append(layout_pb2.Layout.FromString(proto.string_val[0]))
    assert len(layouts) == 1
    (category,) = layouts[0].category
    assert [c.title for c in category.chart] == [
        "deep_sea_4 return",
        "deep_sea_4 cumulative regret",
        "deep_sea_5 return",
        "deep_sea_5 cumulative regret",
        "Deep Sea: episodes to solve vs N (2^N: dithering)",
    ]
    (solve_chart,) = [c for c in category.chart if c.title.startswith("Deep Sea")]
    assert list(solve_chart.multiline.tag) == ["deep_sea/episodes_to_solve"]
    acc = EventAccumulator(
        str(tmp / "out" / "tb" / "deep_sea_5" / "ivi_dqn" / "mean"),
        size_guidance={"scalars": 0, "tensors": 0},
    )
    acc.Reload()
    returns = []
    for seed in (0, 1):
        with np.load(tmp / "out" / "results" / "deep_sea_5" / "ivi_dqn" / f"seed_{seed}.npz") as z:
            returns.append(z["returns"])
    n = min(r.size for r in returns)
    regret = np.cumsum(envs.optimal_return(5) - np.array([r[:n] for r in returns]), axis=1)
    mean, lower, upper = (
        np.array([e.value for e in acc.Scalars(t)])
        for t in compare_tags("deep_sea_5", "cumulative_regret")
    )
    np.testing.assert_allclose(mean, regret.mean(0), rtol=1e-5, atol=1e-6)
    se = regret.std(0, ddof=1) / np.sqrt(2)
    np.testing.assert_allclose(upper - lower, 2 * se, rtol=1e-4, atol=1e-5)
    content = acc.PluginTagToContent("hparams")
    starts = [plugin_data_pb2.HParamsPluginData.FromString(c) for c in content.values()]
    info = next(d.session_start_info for d in starts if d.HasField("session_start_info"))
    assert info.hparams["agent"].string_value == "ivi_dqn"
    assert info.hparams["batch_size"].number_value == 16
    row = next(r for r in rows if (r["env"], r["agent"]) == ("deep_sea_5", "ivi_dqn"))
    assert acc.Scalars("final/return")[0].value == pytest.approx(row["final_return"], rel=1e-6)


def test_the_solve_plot_labels_sizes_not_every_seed_solved():
    """solve.png writes 'k/n' above a size only k of n seeds solved; fully solved sizes and
    unsolved ones (no point to label) get nothing."""

    class Axes:
        def __init__(self):
            self.labels = []

        def annotate(self, text, point, **kwargs):
            self.labels.append((text, point))

    ax = Axes()
    rl_report._label_partly_solved(
        ax,
        [
            {"size": 10, "solved": "3/3", "solved_runs": 3, "runs": 3, "episodes_to_solve": 500.0},
            {"size": 44, "solved": "2/3", "solved_runs": 2, "runs": 3, "episodes_to_solve": 1532.0},
            {"size": 50, "solved": "0/3", "solved_runs": 0, "runs": 3, "episodes_to_solve": ""},
        ],
    )
    assert ax.labels == [("2/3", (44, 1532.0))]


def test_a_changed_registered_default_changes_the_resume_key(tmp_path, monkeypatch):
    """The resume key holds the env's kwargs as built (registration's, then the config's), so
    results made under an earlier registered default (e.g. a mapping seed) rerun."""
    config = load_rl_config(write(tmp_path))
    task = RLTask(config.envs[0], config.agents[0], 0, config)
    before = rl_runner._fingerprint(task)
    spec = gym.registry["ivi_rl/DeepSea-v0"]
    changed = dataclasses.replace(spec, kwargs={**spec.kwargs, "mapping_seed": 7})
    monkeypatch.setitem(gym.registry, "ivi_rl/DeepSea-v0", changed)
    assert rl_runner._fingerprint(task) != before
    # the config's own value wins over the registration's
    same = dataclasses.replace(spec, kwargs={**spec.kwargs, "size": 99})
    monkeypatch.setitem(gym.registry, "ivi_rl/DeepSea-v0", same)
    assert rl_runner._fingerprint(task) == before


def test_env_kwargs_are_the_registrations_then_the_configs_with_a_module_prefix(tmp_path):
    config = load_rl_config(write(tmp_path))
    spec = dataclasses.replace(config.envs[0], id="ivi_rl.envs:ivi_rl/DeepSeaStochastic-v0")
    assert env_kwargs(spec) == {"deterministic": False, "mapping_seed": 0, "size": 4}


def test_a_deep_sea_row_counts_treasures_apart_from_not_bad_episodes():
    """Stochastic Deep Sea: a failed move right ends an episode neither bad nor treasured, so
    the row's ``treasures`` (episodes whose denoised return rose) and ``good_episodes``
    (bsuite's not-bad ones) differ; both are means over seeds."""
    runs = []
    for seed, (bad, found) in enumerate(
        [([1, 0, 0, 1, 0], [0, 1, 0, 0, 0]), ([0, 0, 1, 1, 1], [0, 1, 1, 0, 0])]
    ):
        runs.append(
            {
                "size": np.array(10),
                "seed": np.array(seed),
                "solved": np.array(-1 if seed == 0 else 4),
                "bad": np.array(bad, dtype=bool),
                "denoised": np.cumsum(np.array(found, dtype=float)),
                "returns": np.zeros(5),
                "steps": np.array(50),
                "wall_s": np.array(1.0),
            }
        )
    row = rl_report._row("stochastic_10", "ivi_dqn", runs, [])
    assert (row["good_episodes"], row["treasures"]) == (2.5, 1.5)
    assert (row["solved"], row["solved_runs"], row["runs"]) == ("1/2", 1, 2)
    del runs[1]["denoised"]  # a result written before bsuite's counters: no mean of one seed
    assert rl_report._row("stochastic_10", "ivi_dqn", runs, [])["treasures"] == ""


def test_a_run_of_one_agent_reports_the_others_stored_results(finished, tmp_path):
    """A sweep run one agent at a time (``select_agents``) is summarised whole: the agents
    left out keep their rows and scores from the results already in ``out``, after the
    selected one's; with no stored results only the selected agent is reported."""
    tmp, _, rows = finished
    shutil.copytree(tmp / "out", tmp_path / "out")
    config = write(tmp_path, 'select_agents = ["dqn"]\n' + TINY)
    key = itemgetter("env", "agent")
    assert sorted(run_rl(config, quiet=True), key=key) == sorted(rows, key=key)
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "| ivi_dqn | deep_sea |" in text and "| dqn | deep_sea |" in text
    only = run_rl(config, quiet=True, out=tmp_path / "empty")
    assert {r["agent"] for r in only} == {"dqn"}
