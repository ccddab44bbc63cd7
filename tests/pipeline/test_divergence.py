"""A diverged trial is a result, not a crash: both runners record it, run everything else,
report it (summary, list, TensorBoard, plot) and raise DivergedTrials at the end; a rerun
retries only it; fail_fast stops at the first one."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ivi_rl.agents.bandits import AGENTS, BanditAgent
from ivi_rl.agents.bandits.base import Settings
from ivi_rl.pipeline import DivergedTrials, run_bandit, run_rl
from ivi_rl.pipeline.bandit_config import load_config
from ivi_rl.pipeline.bandit_runner import execute, plan, result_path
from ivi_rl.pipeline.store import Divergence

DIVERGES_AT = 30
REASON = (
    "the training loss is not finite (lower the learning rate 'lr', or check the data's "
    f"scale) at step {DIVERGES_AT}"
)


@dataclasses.dataclass(frozen=True)
class _Settings(Settings):
    train_every: int = 10


class Diverging(BanditAgent):
    """Pulls arms at random; its 'retrain' reports a NaN loss from step 30 on for the trials
    whose seed is in ``diverging_seeds`` (a class attribute the tests set)."""

    name = "diverging"
    settings_class = _Settings
    diverging_seeds: frozenset[int] = frozenset({1})

    def _act(self, contexts: torch.Tensor) -> torch.Tensor:
        u = self.act_streams.uniform(dtype=torch.float64)
        return (u * self.num_actions).long().clamp_max(self.num_actions - 1)

    def _train(self) -> torch.Tensor:
        bad = [s in self.diverging_seeds and self.t >= DIVERGES_AT for s in self.seeds]
        return torch.where(torch.tensor(bad), torch.nan, 0.0)


CONFIG = """
horizon = 60
seeds = {seeds}
log_points = 6

[[datasets]]
name = "wheel"
delta = 0.5

[[agents]]
name = "diverging"
[[agents]]
name = "uniform"
"""


@pytest.fixture
def diverging(monkeypatch):
    monkeypatch.setitem(AGENTS, "diverging", Diverging)
    monkeypatch.setattr(Diverging, "diverging_seeds", frozenset({1}))
    return Diverging


def _config(tmp_path: Path, seeds="3", name="c.toml") -> Path:
    path = tmp_path / name
    path.write_text(
        f'out = "{tmp_path / name.removesuffix(".toml")}"\n' + CONFIG.format(seeds=seeds)
    )
    return path


def _run(config: Path, **kwargs) -> DivergedTrials | list[dict]:
    try:
        return run_bandit(config, executor="in_process", quiet=True, **kwargs)
    except DivergedTrials as err:
        return err


def _summary(out: Path) -> list[dict]:
    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "wall_s"}


def test_a_diverged_trial_is_reported_and_the_rest_of_its_batch_finishes(tmp_path, diverging):
    err = _run(_config(tmp_path))
    assert isinstance(err, DivergedTrials)
    assert err.divergences == [Divergence("wheel", "diverging", 1, DIVERGES_AT, REASON)]
    assert str(err).startswith("1 trial(s) diverged: wheel/diverging seed(s) [1]; ")
    out = tmp_path / "c"
    rows = {r["agent"]: r for r in _summary(out)}
    # the other seeds of the batch ran to the end, as they would have alone
    reference = _run(_config(tmp_path, seeds="[0, 2]", name="ref.toml"))
    assert isinstance(reference, list)
    for seed in (0, 2):
        found = _npz(result_path(out, "wheel", "diverging", seed))
        expected = _npz(result_path(tmp_path / "ref", "wheel", "diverging", seed))
        assert found.keys() == expected.keys()
        for key in found:
            np.testing.assert_array_equal(found[key], expected[key])
    finals = [
        _npz(result_path(out, "wheel", "diverging", s))["cumulative_regret"][-1] for s in (0, 2)
    ]
    assert int(rows["diverging"]["seeds"]) == 2 and int(rows["diverging"]["diverged"]) == 1
    assert float(rows["diverging"]["regret_mean"]) == pytest.approx(np.mean(finals))
    assert int(rows["uniform"]["diverged"]) == 0 and int(rows["uniform"]["seeds"]) == 3
    assert (rows["uniform"]["rank"], rows["diverging"]["rank"]) == ("1", "2")
    record = _npz(result_path(out, "wheel", "diverging", 1))
    assert bool(record["diverged"]) and int(record["step"]) == DIVERGES_AT
    assert str(record["message"]) == REASON
    summary = (out / "summary.md").read_text()
    assert "(1 of 3 seeds diverged)" in summary
    assert f"| wheel | diverging | 1 | {DIVERGES_AT} | {REASON} |" in summary


def _texts(run: Path) -> dict[str, str]:
    acc = EventAccumulator(str(run), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    return {
        tag: acc.Tensors(tag)[0].tensor_proto.string_val[0].decode()
        for tag in acc.Tags()["tensors"]
        if tag.endswith("/text_summary")
    }


def test_tensorboard_leaves_a_diverged_trial_out_visibly(tmp_path, diverging):
    _run(_config(tmp_path))
    tb = tmp_path / "c" / "tb" / "wheel" / "diverging"
    note = _texts(tb / "mean")["left_out/text_summary"]
    assert note.startswith("1 of 3 seeds diverged and are left out of this mean (seeds 1)")
    acc = EventAccumulator(str(tb / "mean"), size_guidance={"scalars": 0})
    acc.Reload()
    assert acc.Scalars("final/diverged_seeds")[0].value == 1.0
    assert len(acc.Scalars("regret/cumulative")) == 6  # the mean of the two finished seeds
    seed_run = _texts(tb / "seed_1")["diverged/text_summary"]
    assert seed_run == f"diverged at step {DIVERGES_AT}: {REASON}"
    seed = EventAccumulator(str(tb / "seed_1"), size_guidance={"scalars": 0})
    seed.Reload()  # its curves up to the last mark before the failed retrain
    assert [e.step for e in seed.Scalars("regret/cumulative")] == [1, 13, 25]


def test_a_rerun_retries_only_the_diverged_trials(tmp_path, diverging, monkeypatch):
    config = _config(tmp_path)
    _run(config)
    out = tmp_path / "c"
    kept = {s: result_path(out, "wheel", "diverging", s) for s in (0, 2)}
    before = {s: (p.read_bytes(), p.stat().st_mtime_ns) for s, p in kept.items()}
    again = _run(config)
    assert isinstance(again, DivergedTrials) and [d.seed for d in again.divergences] == [1]
    assert {s: (p.read_bytes(), p.stat().st_mtime_ns) for s, p in kept.items()} == before
    monkeypatch.setattr(Diverging, "diverging_seeds", frozenset())  # e.g. a fixed bug
    rows = _run(config)
    assert isinstance(rows, list)
    assert {s: (p.read_bytes(), p.stat().st_mtime_ns) for s, p in kept.items()} == before
    row = next(r for r in _summary(out) if r["agent"] == "diverging")
    assert (row["seeds"], row["diverged"]) == ("3", "0")
    assert "diverged" not in (out / "summary.md").read_text()


def test_fail_fast_stops_at_the_first_diverged_trial_without_a_report(tmp_path, diverging):
    with pytest.raises(FloatingPointError, match=r"^wheel/diverging seed 1: the training loss"):
        run_bandit(_config(tmp_path), executor="in_process", quiet=True, fail_fast=True)
    assert not (tmp_path / "c" / "summary.md").exists()


def test_a_task_that_reruns_counts_each_step_once(tmp_path, diverging):
    (task,) = [t for t in plan(load_config(_config(tmp_path))) if t.agent.name == "diverging"]
    counts: list[int] = []
    output = execute(task, counts.append)
    assert sum(counts) == 3 * 60
    assert [d.seed for d in output.diverged] == [1]


def test_every_seed_diverged_leaves_an_empty_cell_ranked_last(tmp_path, diverging, monkeypatch):
    monkeypatch.setattr(Diverging, "diverging_seeds", frozenset({0, 1, 2}))
    err = _run(_config(tmp_path))
    assert [d.seed for d in err.divergences] == [0, 1, 2]
    row = next(r for r in _summary(tmp_path / "c") if r["agent"] == "diverging")
    assert (row["seeds"], row["diverged"], row["regret_mean"], row["rank"]) == ("0", "3", "", "2")
    assert (
        "| wheel | diverging | 0 | (3 of 3 seeds diverged) |"
        in (tmp_path / "c" / "summary.md").read_text()
    )
    assert (tmp_path / "c" / "regret.png").stat().st_size > 0


RL = """
out = "{out}"
seeds = [3]

[[envs]]
id = "ivi_rl/DeepSea-v0"
label = "deep_sea"
episodes = 30
sweep = {{ size = [4, 5] }}

[[agents]]
name = "dqn"
learning_starts = 16
batch_size = 16
policy_kwargs = {{ net_arch = [16] }}
[[agents]]
name = "ivi_dqn_variant"
label = "huge_lr"
stable_lr = false
learning_rate = 1e3
learning_starts = 16
batch_size = 16
policy_kwargs = {{ net_arch = [16], optimizer_class = "sgd" }}
"""


def test_a_diverged_rl_run_counts_as_unsolved_and_is_listed(tmp_path):
    """lr 1e3: on N = 5 the loss of the second update (step 18) passes max_loss; on N = 4
    the run solved the chain (and stopped) before that."""
    config = tmp_path / "rl.toml"
    config.write_text(RL.format(out=tmp_path / "out"))
    with pytest.raises(DivergedTrials) as err:
        run_rl(config, executor="in_process", quiet=True)
    (found,) = err.value.divergences
    assert (found.group, found.agent, found.seed, found.step) == ("deep_sea_5", "huge_lr", 3, 18)
    assert found.message.startswith("VariantIVIDQN: the training loss is ")
    rows = {(r["env"], r["agent"]): r for r in err.value.rows}
    diverged = rows["deep_sea_5", "huge_lr"]
    assert (diverged["seeds"], diverged["diverged"], diverged["solved"]) == (0, 1, "0/1")
    assert diverged["final_return"] == diverged["episodes_to_solve"] == ""
    assert (rows["deep_sea_4", "huge_lr"]["diverged"], rows["deep_sea_4", "huge_lr"]["solved"]) == (
        0,
        "1/1",
    )
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "## Diverged runs (1)" in summary and "above max_loss=1e+10" in summary
    assert (
        "| huge_lr | deep_sea | 0.50 |" in summary
    )  # bsuite's score: the diverged size is not solved
