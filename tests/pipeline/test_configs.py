"""The shipped configs parse and validate (datasets that need files are checked when the
shared data folder is present)."""

from pathlib import Path

import pytest

from ivi_rl.pipeline.bandit_config import load_config
from ivi_rl.pipeline.configs import ConfigError
from ivi_rl.pipeline.pipeline import stale_runs
from ivi_rl.pipeline.rl_config import agent_on, load_rl_config
from ivi_rl.pipeline.rl_runner import RLRunner

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
        "archive/ablations/ivi_settings.toml",
        "archive/ablations/noise_aware.toml",
        "archive/ablations/baselines.toml",
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


# ------------------------------------------------------------------ inheritance
BASE = """
seeds = 3
out = "runs/base"

[defaults.agents]
learning_rate = 0.001
batch_size = 128

[defaults.dqn]
exploration_fraction = 0.1
policy_kwargs = { net_arch = [50, 50] }

[[envs]]
id = "ivi_rl/DeepSea-v0"
episodes = 10
sweep = { size = [4, 5] }

[[agents]]
name = "ivi_dqn"
learning_rate = 0.01
policy_kwargs = { net_arch = [8] }
[[agents]]
name = "dqn"
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_config_starts_from_its_base_and_states_only_what_it_changes(tmp_path):
    _write(tmp_path, "base.toml", BASE)
    child = _write(
        tmp_path,
        "ablations/child.toml",
        'base = "../base.toml"\nseeds = 2\n'
        "[defaults.agents]\nbatch_size = 32\n"
        "[defaults.dqn]\npolicy_kwargs = { net_arch = [16] }\n",
    )
    config = load_rl_config(child)
    assert config.seeds == [0, 1] and str(config.out) == "runs/base"
    assert [e.kwargs["size"] for e in config.envs] == [4, 5]
    ivi, dqn = config.agents
    # shared defaults, then per-name defaults, then the entry; values replace whole
    assert ivi.settings == {
        "learning_rate": 0.01,
        "batch_size": 32,
        "policy_kwargs": {"net_arch": [8]},
    }
    assert dqn.settings == {
        "learning_rate": 0.001,
        "batch_size": 32,
        "exploration_fraction": 0.1,
        "policy_kwargs": {"net_arch": [16]},
    }


def test_policy_kwargs_are_layered_key_by_key(tmp_path):
    """policy_kwargs of [defaults.agents], [defaults.<name>], a child's defaults and the
    agent's own entry combine key by key, the higher layer winning; other settings
    (replay_buffer_kwargs here) replace whole."""
    _write(
        tmp_path,
        "base.toml",
        "seeds = 1\n"
        '[defaults.agents]\npolicy_kwargs = { net_arch = [2], activation_fn = "tanh" }\n'
        '[defaults.ivi_dqn]\npolicy_kwargs = { cov = "diagonal", bias = false }\n'
        "replay_buffer_kwargs = { handle_timeout_termination = false }\n"
        '[[envs]]\nid = "ivi_rl/DeepSea-v0"\nepisodes = 10\nsweep = { size = [4] }\n'
        '[[agents]]\nname = "ivi_dqn"\npolicy_kwargs = { net_arch = [8] }\n'
        '[[agents]]\nname = "dqn"\n',
    )
    child = _write(
        tmp_path,
        "child.toml",
        'base = "base.toml"\n[defaults.ivi_dqn]\npolicy_kwargs = { bias = true }\n'
        "replay_buffer_kwargs = {}\n",
    )
    ivi, dqn = load_rl_config(child).agents
    assert ivi.settings["policy_kwargs"] == {
        "net_arch": [8],
        "activation_fn": "tanh",
        "cov": "diagonal",
        "bias": True,
    }
    assert ivi.settings["replay_buffer_kwargs"] == {}
    assert dqn.settings["policy_kwargs"] == {"net_arch": [2], "activation_fn": "tanh"}


def test_a_list_in_the_child_replaces_the_bases_and_select_agents_keeps_a_subset(tmp_path):
    _write(tmp_path, "base.toml", BASE)
    child = _write(
        tmp_path,
        "child.toml",
        'base = "base.toml"\nselect_agents = ["dqn"]\n'
        '[[envs]]\nid = "ivi_rl/DeepSea-v0"\nepisodes = 5\nsweep = { size = [6] }\n',
    )
    config = load_rl_config(child)
    assert [a.label for a in config.agents] == ["dqn"]
    assert [(e.label, e.episodes) for e in config.envs] == [("deepsea_6", 5)]


def test_folders_of_agents_select_agents_leaves_out_are_not_called_stale(tmp_path):
    """A run of a subset must not warn about the other agents' folders as if they had been
    removed from the config; a folder of an agent the config no longer has still is."""
    _write(tmp_path, "base.toml", BASE)
    child = _write(tmp_path, "child.toml", 'base = "base.toml"\nselect_agents = ["dqn"]\n')
    config = load_rl_config(child, out=str(tmp_path / "out"))
    every = [a.label for a in (*config.agents, *config.unselected)]
    assert config.unselected and "dqn" not in every[1:]
    for agent in [*every, "gone"]:
        (tmp_path / "out" / "tb" / config.envs[0].label / agent).mkdir(parents=True)
    stale = stale_runs(config.out, *RLRunner.labels(config))
    assert stale == [f"tb/{config.envs[0].label}/gone"]


def test_bases_chain(tmp_path):
    _write(tmp_path, "a.toml", BASE)
    _write(tmp_path, "b.toml", 'base = "a.toml"\nseeds = 5\n[defaults.agents]\nbatch_size = 64\n')
    c = _write(tmp_path, "c.toml", 'base = "b.toml"\n[defaults.agents]\nlearning_rate = 0.5\n')
    config = load_rl_config(c)
    assert config.seeds == list(range(5))
    assert config.agents[1].settings["learning_rate"] == 0.5
    assert config.agents[1].settings["batch_size"] == 64


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"c.toml": 'base = "c.toml"\n'}, r"makes a cycle"),
        ({"c.toml": 'base = "d.toml"\n', "d.toml": 'base = "c.toml"\n'}, r"makes a cycle"),
        ({"c.toml": 'base = "missing.toml"\n'}, r"config file .*missing.toml does not exist"),
        ({"c.toml": "base = 3\n"}, r"base=3 is not accepted"),
        (
            {"c.toml": 'base = "a.toml"\n[defaults.a2c]\nx = 1\n'},
            r"defaults: unknown tables \['a2c'\]",
        ),
        ({"c.toml": 'base = "a.toml"\nselect_agents = ["ppo"]\n'}, r"select_agents=\['ppo'\]"),
        ({"c.toml": 'base = "a.toml"\ndefaults = { dqn = 1 }\n'}, r"'defaults' must hold tables"),
    ],
)
def test_bad_inheritance_is_one_line(tmp_path, files, match):
    _write(tmp_path, "a.toml", BASE)
    for name, text in files.items():
        _write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=match):
        load_rl_config(tmp_path / "c.toml")


def test_shipped_configs_inherit_instead_of_copying():
    """The archive's deep_sea_cpu_xl.toml's IVIDQN comes through three bases:
    deep_sea_cpu.toml's MLP agent on top of the old deep_sea.toml's bsuite settings on top of
    IVIDQN's previous defaults (its policy_kwargs key by key); no RL config repeats bsuite's
    replay settings except that deep_sea.toml's defaults, the two ablations that predate them,
    the cost benchmark of IVIDQN's defaults (which are these settings), whose DQN needs them
    spelled out, and today's deep_sea.toml, whose DQN is bsuite's reference agent."""
    xl = load_rl_config(EXPERIMENTS / "archive" / "deep_sea_cpu_xl.toml")
    assert [a.label for a in xl.agents] == ["ivi_dqn", "bootstrapped_dqn"]
    assert xl.agents[0].name == "ivi_dqn_variant"  # the archive runs the contrib variant
    assert xl.agents[0].settings == {
        "learning_rate": 0.01,
        "max_grad_norm": 10,
        "tau": 1.0,
        "output_noise": "sampled",
        "reward_scale": 1.0,
        "buffer_size": 10000,
        "learning_starts": 128,
        "batch_size": 128,
        "train_freq": 1,
        "target_update_interval": 4,
        "policy_kwargs": {
            "net_arch": [200, 200],
            "optimizer_class": "adam",
            "stochastic": "input_output",
            "cov": "diagonal",
            "parametrization": "mup",
            "input_scale": "sqrt_dim",
            "prior_mean": "random",
            "per_action": False,
        },
    }
    copies = [
        str(p.relative_to(EXPERIMENTS))
        for p in EXPERIMENTS.rglob("*.toml")
        if {"buffer_size = 10000", "learning_starts = 128"} <= set(p.read_text().splitlines())
    ]
    assert sorted(copies) == [
        "ablations/reward_scale_cost.toml",  # deep_sea.toml's DQN beside two IVIDQNs
        "archive/ablations/deep_sea_input.toml",
        "archive/ablations/deep_sea_prior.toml",
        "archive/ablations/defaults_cost.toml",  # DQN on IVIDQN's default schedule
        "archive/deep_sea_linear.toml",
        "deep_sea.toml",
    ]


# ------------------------------------------------------------------ command-line overrides
def test_set_overrides_any_key_by_path(tmp_path):
    path = _write(tmp_path, "c.toml", BASE)
    config = load_rl_config(
        path,
        sets=[
            "seeds=2",
            "defaults.agents.batch_size=16",
            "agents.ivi_dqn.policy_kwargs.net_arch=[4, 4]",
            "agents.dqn.learning_rate=0.5",
            "envs.ivi_rl/DeepSea-v0.sweep={ size = [7] }",
            "device=cpu",
        ],
    )
    assert config.seeds == [0, 1] and config.device == "cpu"
    ivi, dqn = config.agents
    assert ivi.settings["policy_kwargs"] == {"net_arch": [4, 4]}
    assert ivi.settings["batch_size"] == dqn.settings["batch_size"] == 16
    assert dqn.settings["learning_rate"] == 0.5
    assert [e.kwargs["size"] for e in config.envs] == [7]
    assert load_rl_config(path).agents[1].settings["learning_rate"] == 0.001  # file untouched


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("seeds", r"--set 'seeds' is not accepted; accepted: KEY=VALUE"),
        ("agents.ppo.learning_rate=1", r"no agents entry labelled 'ppo'; accepted: .*'ivi_dqn'"),
        ("agents.ivi_dqn=1", r"accepted: agents.<label>.<key>"),
        ("seeds.x=1", r"seeds is not a table"),
        ("agents.dqn.bogus=1", r"agent dqn \(dqn\).*bogus"),
    ],
)
def test_bad_sets_are_one_line(tmp_path, item, match):
    with pytest.raises(ConfigError, match=match):
        load_rl_config(_write(tmp_path, "c.toml", BASE), sets=[item])


def test_set_in_a_bandit_config_and_on_the_command_line(tmp_path, capsys):
    from ivi_rl.pipeline.bandit_config import load_config as load_bandit
    from ivi_rl.pipeline.cli import main as cli

    path = _write(
        tmp_path,
        "b.toml",
        'seeds = 3\n[[datasets]]\nname = "wheel"\n[[agents]]\nname = "uniform"\n'
        '[[agents]]\nname = "ivi_ts"\nlabel = "ivi"\n',
    )
    config = load_bandit(path, sets=["agents.ivi.lr=0.05", "datasets.wheel.delta=0.5"])
    assert config.agents[1].settings == {"lr": 0.05}
    assert config.datasets[0].settings == {"delta": 0.5}
    assert cli(["bandit", str(path), "--set", "agents.nope.lr=1", "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no agents entry labelled 'nope'" in line


# ------------------------------------------------------------------ per-env agent settings
def test_env_defaults_sit_between_the_configs_defaults_and_an_agents_own_keys(tmp_path):
    text = BASE + (
        '[defaults."ivi_rl/DeepSea-v0"]\nlearning_rate = 0.2\nbatch_size = 8\n'
        '[defaults."ivi_rl/DeepSea-v0".dqn]\nexploration_fraction = 0.5\n'
    )
    config = load_rl_config(_write(tmp_path, "c.toml", text))
    env = config.envs[0]
    ivi, dqn = (agent_on(a, env).settings for a in config.agents)
    assert ivi["learning_rate"] == 0.01  # its own key wins over the env's
    assert ivi["batch_size"] == dqn["batch_size"] == 8  # the env's beat [defaults.agents]
    assert dqn["learning_rate"] == 0.2 and dqn["exploration_fraction"] == 0.5
    assert "exploration_fraction" not in ivi  # per-name tables reach only that algorithm


def test_env_defaults_policy_kwargs_layer_key_by_key(tmp_path):
    """An env's policy_kwargs (its shared table under its per-name one) replace the config
    defaults' keys, never a key of the agent's own policy_kwargs, and keep the other keys of
    every layer."""
    text = BASE + (
        '[defaults.ivi_dqn]\npolicy_kwargs = { cov = "full", bias = false }\n'
        '[defaults."ivi_rl/DeepSea-v0"]\npolicy_kwargs = { activation_fn = "tanh" }\n'
        '[defaults."ivi_rl/DeepSea-v0".ivi_dqn]\n'
        'policy_kwargs = { net_arch = [4], cov = "diagonal" }\n'
    )
    config = load_rl_config(_write(tmp_path, "c.toml", text))
    ivi, dqn = (agent_on(a, config.envs[0]).settings for a in config.agents)
    assert ivi["policy_kwargs"] == {
        "net_arch": [8],  # the agent's own
        "cov": "diagonal",  # the env's, over [defaults.ivi_dqn]
        "bias": False,
        "activation_fn": "tanh",
    }
    assert dqn["policy_kwargs"] == {"net_arch": [50, 50], "activation_fn": "tanh"}


def test_classic_gives_each_env_the_rl_zoos_own_dqn_settings():
    """rl-baselines3-zoo hyperparams/dqn.yml (commit ce95481b), per env."""
    zoo = {
        "cartpole": (0.0023, 64, 100000, 1000, 0.99, 10, 256, 128, 0.16, 0.04, 50000),
        "mountaincar": (0.004, 128, 10000, 1000, 0.98, 600, 16, 8, 0.2, 0.07, 120000),
        "acrobot": (0.00063, 128, 50000, 0, 0.99, 250, 4, -1, 0.12, 0.1, 100000),
    }
    keys = (
        "learning_rate",
        "batch_size",
        "buffer_size",
        "learning_starts",
        "gamma",
        "target_update_interval",
        "train_freq",
        "gradient_steps",
        "exploration_fraction",
        "exploration_final_eps",
    )
    config = load_rl_config(EXPERIMENTS / "classic.toml")
    for env in config.envs:
        agents = {a.name: agent_on(a, env).settings for a in config.agents}
        dqn = agents["dqn"]
        assert (*(dqn[k] for k in keys), env.timesteps) == zoo[env.label], env.label
        assert dqn["policy_kwargs"] == {"net_arch": [256, 256]}
        assert agents["ivi_dqn"] == {}  # IVIDQN at its defaults


# ------------------------------------------------------------------ executors
def test_the_executor_comes_from_the_config_or_the_command_line(tmp_path):
    from ivi_rl.pipeline.executors import ExecutorKind, ExecutorSpec

    path = _write(tmp_path, "c.toml", "workers = 3\n" + BASE)
    assert load_rl_config(path).executor == ExecutorSpec(ExecutorKind.LOCAL, workers=3)
    table = '[executor]\nkind = "in_process"\ncpus_per_task = 2\nmax_retries = 0\n'
    path = _write(tmp_path, "t.toml", BASE + table)
    spec = load_rl_config(path).executor
    assert (spec.kind, spec.cpus_per_task, spec.max_retries) == ("in_process", 2, 0)
    spec = load_rl_config(path, executor_kind="local").executor  # --executor wins
    assert (spec.kind, spec.cpus_per_task) == ("local", 2)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('executor = "rey"\n', r"executor='rey' is not accepted; accepted: in_process, local, ray"),
        ("executor = 3\n", r"executor=3 is not accepted; accepted: one of in_process"),
        ("[executor]\ncores = 2\n", r"executor: unknown keys \['cores'\]"),
        ("[executor]\ngpus_per_task = -1\n", r"executor.gpus_per_task=-1 must be a number >= 0"),
        ("[executor]\ncpus_per_task = 0\n", r"executor.cpus_per_task=0 must be a positive int"),
        ("[executor]\nmax_retries = -1\n", r"executor.max_retries=-1 must be an int >= 0"),
        ('[executor]\naddress = "h:1"\n', r"address='h:1' is not accepted with executor='local'"),
    ],
)
def test_bad_executors_are_one_line(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        text = BASE + text if text.startswith("[") else text + BASE  # a table goes last
        load_rl_config(_write(tmp_path, "c.toml", text))


def test_a_cuda_run_on_ray_asks_for_a_gpu_per_task_unless_told():
    from ivi_rl.pipeline.configs import executor_spec

    pytest.importorskip("ray")
    cuda = {"device": "cuda", "executor": "ray"}
    assert executor_spec(cuda).gpus_per_task == 1.0
    shared = {"device": "cuda:0", "executor": {"kind": "ray", "gpus_per_task": 0.25}}
    assert executor_spec(shared).gpus_per_task == 0.25
    assert executor_spec({"device": "cpu", "executor": "ray"}).gpus_per_task == 0.0
    assert executor_spec({"device": "cuda"}).gpus_per_task == 0.0  # the local pool asks nothing


def test_set_finds_an_env_by_the_label_the_runner_gives_it(tmp_path):
    """An env without a label is labelled from its id (deepsea), and --set takes that label
    (as well as the id)."""
    path = _write(tmp_path, "c.toml", BASE)
    config = load_rl_config(path, sets=["envs.deepsea.episodes=5"])
    assert [(e.label, e.episodes) for e in config.envs] == [("deepsea_4", 5), ("deepsea_5", 5)]
