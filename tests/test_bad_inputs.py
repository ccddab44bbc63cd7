"""Bad numbers at every door: each case must fail with one error naming the problem, before
(or instead of) training on it. Cases from a new user's tries; a regression turns red here."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import ivi_rl
from ivi_rl import envs
from ivi_rl.agents import IVIDQN, BootstrappedDQN
from ivi_rl.agents.bandits import TrialsDiverged, make_agent
from ivi_rl.agents.sb3 import ivi_dqn as ivi_dqn_module
from ivi_rl.contrib.sb3 import VariantIVIDQN
from ivi_rl.envs.tabular import ArraysProblem, FinancialProblem
from ivi_rl.envs.trial import Trial
from ivi_rl.pipeline.cli import main as cli


def _nan_at(shape, index, value=np.nan):
    a = np.random.default_rng(0).normal(size=shape)
    a[index] = value
    return a


PROBLEM_CASES = {
    "classification x with a NaN": (
        lambda: envs.make_problem(
            "classification", x=_nan_at((20, 3), (3, 1)), y=np.arange(20) % 2
        ),
        r"x holds 1 non-finite values \(NaN or inf; the first at index \(3, 1\): nan\)",
    ),
    "arrays rewards with inf": (
        lambda: ArraysProblem(np.zeros((5, 2)), _nan_at((5, 3), (2, 0), np.inf)),
        r"rewards holds 1 non-finite values .*index \(2, 0\): inf",
    ),
    "arrays contexts with NaN": (
        lambda: ArraysProblem(_nan_at((5, 2), (0, 0)), np.zeros((5, 3))),
        r"contexts holds 1 non-finite values",
    ),
    "arrays expected rewards with NaN": (
        lambda: ArraysProblem(np.zeros((5, 2)), np.zeros((5, 3)), _nan_at((5, 3), (4, 2))),
        r"expected_rewards holds 1 non-finite values",
    ),
    "financial contexts with NaN": (
        lambda: FinancialProblem(_nan_at((30, 21), (7, 7))),
        r"contexts holds 1 non-finite values",
    ),
    "a trial with a NaN reward": (
        lambda: Trial(np.zeros((3, 2)), _nan_at((3, 2), (1, 1)), np.zeros((3, 2))),
        r"the trial's rewards holds 1 non-finite values",
    ),
}


@pytest.mark.parametrize("case", list(PROBLEM_CASES))
def test_non_finite_data_is_refused_where_it_enters(case):
    build, match = PROBLEM_CASES[case]
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_settings_are_refused(value):
    with pytest.raises(TypeError, match=r"lr=(inf|nan) is not accepted; expected a finite number"):
        make_agent("ivi_ts", 2, 3, [0], 10, lr=value)


@pytest.mark.parametrize("name", ["ivi_ts", "lin_full_post", "neural_linear", "uniform"])
def test_a_non_finite_observed_reward_stops_the_agent_naming_trial_and_step(name):
    agent = make_agent(name, 2, 3, [0, 7], 10)
    x = torch.zeros(2, 3)
    agent.observe(x, agent.act(x), torch.zeros(2))
    with pytest.raises(
        FloatingPointError,
        match=rf"agent '{name}': observed rewards are not finite at step 2, trial seed\(s\) \[7\]",
    ):
        agent.observe(x, agent.act(x), torch.tensor([0.0, float("nan")]))


def _tiny_ivi_ts(**settings):
    return make_agent(
        "ivi_ts",
        2,
        3,
        [0, 5],
        100,
        hidden=[8],
        train_every=10,
        train_steps=5,
        batch_size=8,
        **settings,
    )


def _observe_steps(agent, steps: int) -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(2, 3, generator=gen)
        agent.observe(x, agent.act(x), torch.randn(2, generator=gen))


def test_a_diverging_bandit_retrain_stops_with_one_line_naming_trials_and_step():
    """lr 1e6 without the stable step: the first retrain's loss is NaN; the agent raises
    instead of acting on NaN (it used to go on pulling arm 0 and end with a normal-looking
    summary), naming the trials and the step for the runner to record."""
    agent = _tiny_ivi_ts(lr=1e6, stable_lr=False)
    with pytest.raises(TrialsDiverged, match=r"training loss is not finite .* at step 10") as err:
        _observe_steps(agent, 10)
    assert (err.value.seeds, err.value.step) == ([0, 5], 10)
    assert "trial seed" not in err.value.reason and "at step 10" in err.value.reason


def test_the_stable_step_keeps_a_huge_learning_rate_from_diverging():
    """The same lr 1e6 with the default stable step: every retrain is capped at the
    stability bound, so the losses stay finite (the factor is about 1e-6 or less)."""
    agent = _tiny_ivi_ts(lr=1e6)
    for _ in range(5):
        _observe_steps(agent, 10)
        assert torch.isfinite(agent.last_loss).all()
    assert (agent.last_step_scale < 1e-5).all()


def _cartpole_dqn(cls=IVIDQN, **kwargs):
    return cls(
        "MlpPolicy",
        gym.make("CartPole-v1"),
        learning_starts=10,
        batch_size=8,
        train_freq=1,
        **{"seed": 0, **kwargs},
    )


def test_a_diverging_ividqn_stops_with_one_line():
    """lr 1e12 without the stable step (the variant's stable_lr=False)."""
    model = _cartpole_dqn(VariantIVIDQN, learning_rate=1e12, stable_lr=False)
    with pytest.raises(
        FloatingPointError, match=r"VariantIVIDQN: the training loss is (inf|nan) at step"
    ):
        model.learn(300)


HUGE_LR_SEEDS = range(12)


@pytest.mark.parametrize("rule", ["returns", "rewards"])
@pytest.mark.parametrize("seed", HUGE_LR_SEEDS)
def test_the_stable_step_keeps_ividqn_finite_at_a_huge_learning_rate(seed, rule):
    """Both reward-scale rules, twelve seeds: the factor stays at the stability bound and the
    losses finite (RESULTS.md "A step that cannot diverge" gives the seeds that diverged
    before the bounded rise and the fixed trigger reference)."""
    model = _cartpole_dqn(learning_rate=1e12, seed=seed, reward_scale=rule)
    model.learn(600)
    assert model._stability.factor < 1e-9
    losses = [float(model._loss(model.replay_buffer.sample(8)).detach()) for _ in range(3)]
    assert all(np.isfinite(losses))


def _diverged(seeds) -> int:
    diverged = 0
    for seed in seeds:
        try:
            _cartpole_dqn(learning_rate=1e12, seed=seed).learn(600)
        except FloatingPointError as error:
            assert "diverged" in str(error)
            diverged += 1
    return diverged


def test_control_a_factor_measured_on_schedule_only_lets_ividqn_diverge(monkeypatch):
    """Without the loss trigger and the bounded rise the curvature outgrows the factor
    between two scheduled measurements on some of the same seeds: at least 2 of the first 8,
    so that a change of trajectory does not flip the test while the mechanism stays."""
    monkeypatch.setattr(ivi_dqn_module, "STABILITY_GROWTH", float("inf"))
    monkeypatch.setattr(ivi_dqn_module, "STABILITY_RISE", float("inf"))
    assert _diverged(range(8)) >= 2


class _Recorder:
    def record(self, *args) -> None:
        pass


def _factors(measurements, losses):
    """The factors a fresh stable-step state gives for ``losses``, its measurements
    returning ``measurements`` in turn, and the (update, keep) of every measurement."""
    stable, values, calls, factors = ivi_dqn_module._StableStep(), iter(measurements), [], []

    def measure(model, data, keep):
        calls.append((len(factors), keep))  # the update being scaled
        return next(values)

    stable._measure = measure
    model = type("Model", (), {"logger": _Recorder()})()
    for loss in losses:
        factors.append(stable.scale(model, None, loss))
    return factors, calls


def test_a_scheduled_measurement_raises_the_factor_at_most_twofold():
    every = ivi_dqn_module.STABILITY_EVERY
    factors, calls = _factors([1e-3, 1.0, 1.0, 5e-4], [1.0] * (3 * every + 1))
    assert calls == [(i * every, True) for i in range(4)]
    assert factors[0] == factors[every - 1] == 1e-3
    assert factors[every] == 2e-3 and factors[2 * every] == 4e-3
    assert factors[3 * every] == 5e-4  # lowering is at once


def test_a_growing_loss_measures_at_every_update_past_the_reference():
    """The reference is the last window's mean loss (1): a loss past 100 times it measures
    again, however many losses before it already did, and a measurement it triggers only
    lowers the factor."""
    every = ivi_dqn_module.STABILITY_EVERY
    losses = [1.0] * every + [50.0, 150.0, 1.5e3, 1.5e4, 2.0]
    factors, calls = _factors([0.5, 0.5, 0.1, 0.2, 0.01], losses)
    assert calls == [
        (0, True),
        (every, True),
        (every + 1, False),
        (every + 2, False),
        (every + 3, False),
    ]
    assert factors[every:] == [0.5, 0.1, 0.1, 0.01, 0.01]


def test_in_the_first_window_the_reference_is_the_mean_loss_so_far():
    factors, calls = _factors([0.5, 0.25], [1.0, 1.0, 1e3, 99.0])
    assert calls == [(0, True), (2, False)]
    assert factors == [0.5, 0.5, 0.25, 0.25]


def test_a_huge_but_finite_loss_stops_ividqn_and_max_loss_none_turns_the_check_off():
    def model(**kwargs):
        return _cartpole_dqn(VariantIVIDQN, learning_rate=1e3, stable_lr=False, **kwargs)

    with pytest.raises(
        FloatingPointError, match=r"loss is \d\.\d+e\+1\d at step 12 .*max_loss=1e\+10"
    ):
        model().learn(100)
    model(max_loss=None).learn(12)  # the same update passes unchecked
    with pytest.raises(ValueError, match=r"max_loss=-1 is not accepted; accepted: a number > 0"):
        model(max_loss=-1)


DIVERGING_BANDIT = (
    'horizon = 60\nseeds = 2\nworkers = 1\n[[datasets]]\nname = "wheel"\ndelta = 0.5\n'
    '[[agents]]\nname = "ivi_ts"\nlr = 1e6\nstable_lr = false\nhidden = [8]\n'
    "train_every = 20\ntrain_steps = 5\nbatch_size = 16\n"
    '[[agents]]\nname = "uniform"\n'
)


def test_cli_reports_diverged_trials_after_the_summary_with_exit_status_1(tmp_path, capsys):
    config = tmp_path / "diverge.toml"
    config.write_text(f'out = "{tmp_path / "out"}"\n' + DIVERGING_BANDIT)
    assert cli(["bandit", str(config), "--quiet"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "ivi-rl bandit: error: 2 trial(s) diverged: wheel/ivi_ts seed(s) [0, 1]; "
    )
    assert line.endswith("the same command runs them again")
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| wheel | ivi_ts | 0 | (2 of 2 seeds diverged) |" in summary
    assert "| wheel | uniform | 2 |" in summary


def test_cli_fail_fast_stops_at_the_first_diverged_trial_as_one_line(tmp_path, capsys):
    config = tmp_path / "diverge.toml"
    config.write_text(f'out = "{tmp_path / "out"}"\n' + DIVERGING_BANDIT)
    assert cli(["bandit", str(config), "--quiet", "--fail-fast"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "ivi-rl bandit: error: wheel/ivi_ts seed 0: the training loss is not finite"
    )
    assert line.endswith("at step 20")
    assert not (tmp_path / "out" / "summary.md").exists()


def test_cli_names_env_agent_and_seed_of_a_diverging_rl_run(tmp_path, capsys):
    """--fail-fast: one line naming the run, as before runs were recorded; without it the
    run is recorded and reported, exit status 1 naming it."""
    config = tmp_path / "diverge.toml"
    lines = [
        f'out = "{tmp_path / "out"}"',
        "seeds = [3]",
        "workers = 1",
        "[[envs]]",
        'id = "CartPole-v1"',
        "timesteps = 300",
        "[[agents]]",
        'name = "ivi_dqn_variant"',
        'label = "ivi_dqn"',
        "stable_lr = false",
        "learning_rate = 1e3",
        "learning_starts = 10",
        "batch_size = 8",
        'policy_kwargs = { optimizer_class = "sgd" }',
    ]
    config.write_text("\n".join(lines) + "\n")
    assert cli(["rl", str(config), "--quiet", "--fail-fast"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "ivi-rl rl: error: cartpole/ivi_dqn seed 3: VariantIVIDQN: the training loss"
    )
    assert "above max_loss=1e+10" in line
    assert cli(["rl", str(config), "--quiet"]) == 1  # recorded, reported, exit status 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ivi-rl rl: error: 1 trial(s) diverged: cartpole/ivi_dqn seed(s) [3];")
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "## Diverged runs (1)" in summary and "above max_loss=1e+10" in summary


TINY_BANDIT = (
    'horizon = 40\nseeds = 1\nworkers = 1\nlog_points = 4\n[[datasets]]\nname = "wheel"\n'
    'delta = 0.5\n[[agents]]\nname = "uniform"\n'
)


def _bandit_config(tmp_path, body=TINY_BANDIT, out=None):
    path = tmp_path / "c.toml"
    out = str(tmp_path / "out") if out is None else out
    path.write_text(f"out = {out!r}\n" + body)
    return path


def _config_is_a_folder(t):
    return ["bandit", str(t)]


def _config_is_binary(t):
    (t / "b.toml").write_bytes(b"\xff\xfe\x00binary")
    return ["bandit", str(t / "b.toml")]


def _out_is_empty(t):
    return ["bandit", str(_bandit_config(t)), "--out", ""]


def _out_is_a_file(t):
    (t / "f").write_text("x")
    return ["bandit", str(_bandit_config(t)), "--out", str(t / "f")]


def _out_is_under_a_file(t):
    (t / "f").write_text("x")
    return ["bandit", str(_bandit_config(t)), "--out", str(t / "f" / "sub")]


def _label_leaves_out(t):
    body = TINY_BANDIT.replace('name = "uniform"', 'name = "uniform"\nlabel = "../x"')
    return ["bandit", str(_bandit_config(t, body))]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_config_is_a_folder, r"config .* is a folder; accepted: a TOML file"),
        (_config_is_binary, r"is not a text file; accepted: a TOML file"),
        (_out_is_empty, r"out='' is not accepted; accepted: a folder path"),
        (_out_is_a_file, r"out='.*/f' is a file; accepted: a folder"),
        (_out_is_under_a_file, r"out='.*/f/sub' cannot be created"),
        (_label_leaves_out, r"agents\[0\] label='\.\./x' is not accepted"),
    ],
)
def test_cli_bad_paths_and_labels_are_one_line_with_exit_status_2(tmp_path, capsys, make, message):
    argv = make(tmp_path)
    assert cli([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert re.search(message, err[0]), err[0]


def test_rl_labels_follow_the_same_rule(tmp_path):
    from ivi_rl.pipeline.rl_config import load_rl_config

    path = tmp_path / "rl.toml"
    path.write_text(
        f'out = "{tmp_path / "o"}"\nseeds = 1\n[[envs]]\nid = "CartPole-v1"\ntimesteps = 10\n'
        '[[agents]]\nname = "dqn"\nlabel = "../../../x"\n'
    )
    with pytest.raises(Exception, match=r"agents\[0\] label='\.\./\.\./\.\./x' is not accepted"):
        load_rl_config(path)


def test_a_second_run_on_the_same_out_is_refused_naming_the_first(tmp_path):
    from ivi_rl.pipeline.configs import ConfigError
    from ivi_rl.pipeline.lock import output_lock

    with output_lock(tmp_path / "out"):
        with pytest.raises(ConfigError, match=r"is in use by another run \(pid \d+ on "):
            with output_lock(tmp_path / "out"):
                pass
    with output_lock(tmp_path / "out"):  # released when the first run ends
        pass


def test_results_are_written_with_the_users_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        assert cli(["bandit", str(_bandit_config(tmp_path)), "--quiet"]) == 0
    finally:
        os.umask(old)
    result = next((tmp_path / "out" / "results").rglob("*.npz"))
    assert oct(result.stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "out" / "summary.md").stat().st_mode & 0o777) == oct(0o644)


def test_editing_log_points_recomputes_instead_of_mixing(tmp_path):
    """log_points is part of the fingerprint: after an edit the run is redone, and the
    report reads one consistent set of results."""
    config = _bandit_config(tmp_path)
    assert cli(["bandit", str(config), "--quiet"]) == 0
    config.write_text(config.read_text().replace("log_points = 4", "log_points = 8"))
    assert cli(["bandit", str(config), "--quiet"]) == 0
    from ivi_rl.pipeline.bandit_runner import fingerprint

    with np.load(next((tmp_path / "out" / "results").rglob("*.npz"))) as z:
        stored = str(z["fingerprint"])
    from ivi_rl.pipeline.bandit_config import load_config

    c = load_config(config)
    assert stored == fingerprint(c.datasets[0], c.agents[0], 40, 0, 8)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda b: b.replace("horizon = 40", "horizon = 1_000_000_000"),
            r"horizon 1,000,000,000 x 1 seeds needs about .* GiB for the trials' arrays",
        ),
        (
            lambda b: b.replace("seeds = 1", "seeds = 1_000_000_000"),
            r"seeds=1000000000 is not accepted; accepted: at most 100,000",
        ),
    ],
)
def test_sizes_that_cannot_fit_are_refused_before_any_work(tmp_path, capsys, edit, message):
    assert cli(["bandit", str(_bandit_config(tmp_path, edit(TINY_BANDIT))), "--quiet"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_wheel_env_refuses_a_zero_horizon():
    with pytest.raises(ValueError, match=r"horizon=0 must be a positive int"):
        gym.make("ivi_rl/Wheel-v0", horizon=0)


def test_a_truncated_npz_is_named(tmp_path):
    from ivi_rl.envs.loaders import read_npz

    good = tmp_path / "m.npz"
    np.savez(good, contexts=np.zeros((4, 2)), rewards=np.zeros((4, 3)))
    data = good.read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match=r"bad\.npz.*not a readable \.npz"):
        read_npz(bad)


def test_sb3_load_names_a_missing_or_corrupt_file(tmp_path):
    import zipfile

    model = IVIDQN("MlpPolicy", gym.make("CartPole-v1"), learning_starts=10, seed=0)
    model.save(tmp_path / "m.zip")
    with (
        zipfile.ZipFile(tmp_path / "m.zip") as zin,
        zipfile.ZipFile(tmp_path / "bad.zip", "w") as z,
    ):
        for item in zin.infolist():
            data = b"garbage" if item.filename == "policy.pth" else zin.read(item.filename)
            z.writestr(item, data)
    with pytest.raises(FileNotFoundError, match=r"IVIDQN.load: .*nope\.zip does not exist$"):
        IVIDQN.load(tmp_path / "nope.zip")
    with pytest.raises(ValueError, match=r"bad\.zip is not a readable saved IVIDQN") as err:
        IVIDQN.load(tmp_path / "bad.zip")
    assert "weights_only" not in str(err.value)
    assert isinstance(IVIDQN.load(tmp_path / "m"), IVIDQN)


def test_cli_does_not_abbreviate_options_and_has_a_version(capsys):
    """'--seed 3' used to be read as '--seeds 3' (a count) and run seeds 0, 1, 2."""
    with pytest.raises(SystemExit) as exit_info:
        cli(["bandit", "experiments/default.toml", "--seed", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --seed 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["--version"])
    assert re.fullmatch(r"ivi-rl \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_runs_of_a_renamed_agent_are_named_in_a_warning(tmp_path, capsys):
    """A renamed agent's old TensorBoard runs and results stay (they are the user's data),
    but the run says so on stderr, quiet or not, naming the folders."""
    config = _bandit_config(tmp_path)
    assert cli(["bandit", str(config), "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err
    label = next(iter((tmp_path / "out" / "tb").glob("*/*"))).name
    assert cli(["bandit", str(config), "--quiet", "--set", f"agents.{label}.label=renamed"]) == 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    dataset = next(iter((tmp_path / "out" / "tb").glob("*"))).name
    assert line.startswith("ivi-rl: warning: 2 run folder(s)")
    assert f"tb/{dataset}/{label}, results/{dataset}/{label}" in line


API_CASES = [
    (lambda: gym.make("ivi_rl/DeepSea-v0", size=1), r"size=1 must be an int >= 2"),
    (lambda: gym.make("ivi_rl/DeepSea-v0", size="x"), r"size='x' must be an int >= 2"),
    (lambda: envs.make_problem("mushrom"), r"dataset='mushrom' is not accepted; accepted: mush"),
    (lambda: envs.make_problem("wheel", deltaa=0.5), r"unknown setting 'deltaa'; accepted: delta"),
    (lambda: envs.make_problem("wheel", delta=2.0), r"delta=2.0 must be in the open interval"),
    (
        lambda: envs.make_problem("classification", x=np.zeros((5, 2)), y=np.zeros(4)),
        r"X \(5, 2\) and y \(4,\) must be \[N, d\] and \[N\]",
    ),
    (lambda: make_agent("ivi_tss", 2, 3, [0], 10), r"agent='ivi_tss' is not accepted; accepted"),
    (lambda: make_agent("ivi_ts", 2, 3, [0], 10, bogus=1), r"unknown setting 'bogus'"),
    (lambda: make_agent("ivi_ts", 2, 3, [0], 10, hidden=[-4]), r"hidden=\[-4\] is not accepted"),
    (lambda: make_agent("ivi_ts", 2, 3, [0], 10, lr="big"), r"lr='big' is not accepted"),
    (lambda: make_agent("ivi_ts", 2, 3, [], 10), r"seeds must name at least one trial"),
    (lambda: make_agent("ivi_ts", 2, 3, [0], 0), r"horizon=0 is not accepted; accepted: an int"),
    (lambda: make_agent("ivi_ts", 1, 3, [0], 10), r"num_actions=1 is not accepted; accepted: an"),
    (lambda: ivi_rl.VariationalLinear(3, 2, cov="bogus"), r"cov='bogus' is not accepted"),
    (lambda: ivi_rl.VariationalLinear(0, 2), r"in_features=0 must be a positive int"),
    (lambda: ivi_rl.make_mlp(3, 2, [-1]), r"hidden=\[-1\] must be a sequence of positive ints"),
    (lambda: ivi_rl.get_parametrization("mupp"), r"parametrization='mupp' is not accepted"),
    (
        lambda: IVIDQN("MlpPolicy", gym.make("Pendulum-v1")),
        r"IVIDQN needs a Discrete action space",
    ),
    (
        lambda: IVIDQN("MlpPolicy", gym.make("CartPole-v1"), policy_kwargs={"cov": "bogus"}),
        r"cov='bogus' is not accepted",
    ),
    (
        lambda: IVIDQN("MlpPolicy", gym.make("CartPole-v1"), learning_rate="lin_0.02"),
        r"learning_rate='lin_0.02' is not accepted; accepted: a finite number > 0 or a schedule",
    ),
    (
        lambda: BootstrappedDQN("MlpPolicy", gym.make("CartPole-v1"), learning_rate=float("nan")),
        r"learning_rate=nan is not accepted; accepted: a finite number > 0 or a schedule",
    ),
    (
        lambda: VariantIVIDQN("MlpPolicy", gym.make("CartPole-v1"), target="x"),
        r"target='x' is not accepted; accepted: same_draw, mean, independent",
    ),
]


@pytest.mark.parametrize(("make", "message"), API_CASES)
def test_the_python_api_names_the_bad_argument(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_an_unwritable_out_is_one_line_with_exit_status_2(tmp_path, capsys, monkeypatch):
    """(Checked through os.access: the tests may run as root, who can write anywhere.)"""
    import ivi_rl.pipeline.lock as lock

    monkeypatch.setattr(lock.os, "access", lambda path, mode: False)
    assert cli(["bandit", str(_bandit_config(tmp_path)), "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.search(r"out='.*/out' is not writable by this user", line)


CLI_CASES = [
    (["bandit", "{bandit}", "--seeds", "0"], r"seeds=0 must be a positive count"),
    (["bandit", "{bandit}", "--horizon", "0"], r"horizon=0 must be a positive int"),
    (["bandit", "{bandit}", "--device", "tpu"], r"device='tpu' is not a device; accepted"),
    (["bandit", "{bandit}", "--workers", "0"], r"workers=0 must be a positive int"),
    (["bandit", "{bandit}", "--executor", "bogus"], r"executor='bogus' is not accepted"),
    (["bandit", "{bandit}", "--address", "h:1"], r"address='h:1' is not accepted with executor"),
    (["bandit", "{bandit}", "--set", "x"], r"--set 'x' is not accepted; accepted: KEY=VALUE"),
    (["bandit", "{dir}/nope.toml"], r"config file .*nope.toml does not exist"),
    (
        ["rl", "{bandit}"],
        r"this is a bandit config \(\[\[datasets\]\]\); run it with `ivi-rl bandit`",
    ),
    (["bandit", "{rl}"], r"this is an RL config \(\[\[envs\]\]\); run it with `ivi-rl rl`"),
    (["rl", "{rl}", "--device", "cuda:9"], r"device='cuda:9'"),
]


@pytest.mark.parametrize(("argv", "message"), CLI_CASES)
def test_cli_bad_arguments_are_one_line_with_exit_status_2(tmp_path, capsys, argv, message):
    bandit = _bandit_config(tmp_path)
    rl = tmp_path / "rl.toml"
    rl.write_text('[[envs]]\nid = "ivi_rl/DeepSea-v0"\nepisodes = 2\n[[agents]]\nname = "dqn"\n')
    argv = [a.format(bandit=bandit, rl=rl, dir=tmp_path) for a in argv]
    if "cuda:9" in argv and torch.cuda.device_count() > 9:
        pytest.skip("this machine has a cuda:9")
    assert cli([*argv, "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.search(message, line), line
    assert not (tmp_path / "out").exists()


def test_a_loss_triggered_measurement_leaves_the_schedules_stream_and_warm_starts():
    """A measurement the loss triggers (``keep=False``) restores the random stream and the
    power iterations' warm starts, so the scheduled measurements, and training wherever the
    trigger lowers nothing, are those of a run without it; a scheduled one moves both."""
    model = _cartpole_dqn(learning_rate=1e-3)
    model.learn(200)
    stable, data = model._stability, model.replay_buffer.sample(8)

    def snapshot():
        flat = torch.utils._pytree.tree_leaves(stable.vectors)
        return model._stability_generator.get_state(), [v.clone() for v in flat]

    state, vectors = snapshot()
    stable._measure(model, data, keep=False)
    after_state, after_vectors = snapshot()
    assert torch.equal(state, after_state)
    assert all(torch.equal(a, b) for a, b in zip(vectors, after_vectors, strict=True))
    stable._measure(model, data, keep=True)
    moved_state, moved_vectors = snapshot()
    assert not torch.equal(state, moved_state)
    assert not all(torch.equal(a, b) for a, b in zip(vectors, moved_vectors, strict=True))
