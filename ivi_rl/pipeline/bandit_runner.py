"""The bandit benchmark's tasks: the Showdown loop over datasets x agents x seeds.

Within a trial every agent sees the same contexts and reward draws (a trial is a function of
the dataset settings, the horizon and the seed). Seeds of one (dataset, agent) run as one
batched computation when ``vectorize`` is on (the agents are batched over trials), otherwise
one at a time; tasks run on the config's executor and hand their files back to the driver.

Output directory:
    tb/<dataset>/<agent>/seed_<s>/   TensorBoard run per trial (same tags for every agent)
    tb/<dataset>/<agent>/mean/       mean curves over seeds
    results/<dataset>/<agent>/seed_<s>.npz   per-trial regret curves (atomic; resume key)
    summary.csv, summary.md, mean_rank.csv, regret.png
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ivi_rl import envs
from ivi_rl.agents.bandits import TrialsDiverged, make_agent, play

from .atomic import fingerprint_of, npz_bytes
from .bandit_config import AgentSpec, BanditConfig, DatasetSpec
from .pipeline import tensorboard_command
from .store import (
    CappedProgress,
    Divergence,
    TaskOutput,
    diverged_record,
    folder_files,
    in_scratch,
    is_finished,
    run_paths,
)

__all__ = ["TAGS", "BanditRunner", "Task", "execute", "plan"]

TAGS = (
    "regret/cumulative",
    "regret/instant",
    "reward/cumulative",
    "actions/optimal_fraction",
    "train/loss",
    "train/step_scale",
    "posterior/spread",
)
"""Scalar tags of every run (``train/*`` only for agents that train, ``train/step_scale``
for those with a stable step, ``posterior/spread`` only for posterior agents), plus the
histogram ``posterior/spread_per_arm``."""
SPREAD_DRAWS = 16


@dataclasses.dataclass(frozen=True)
class Task:
    dataset: DatasetSpec
    agent: AgentSpec
    seeds: tuple[int, ...]
    horizon: int
    device: str
    log_points: int
    data_dir: str | None


def result_path(out: Path, dataset: str, agent: str, seed: int) -> Path:
    """Where a trial's result file lies below the output folder ``out``."""
    return Path(out) / run_paths(dataset, agent, seed)[1]


def fingerprint(
    dataset: DatasetSpec, agent: AgentSpec, horizon: int, seed: int, log_points: int
) -> str:
    """What determines a run's stored result; it is reused only if this matches."""
    return fingerprint_of(
        dataset.name, dataset.settings, agent.name, agent.settings, horizon, seed, log_points
    )


def is_done(
    out: Path, dataset: DatasetSpec, agent: AgentSpec, horizon: int, seed: int, log_points: int
) -> bool:
    """Whether the trial has a finished result for these settings (a diverged one is retried)."""
    return is_finished(
        result_path(out, dataset.label, agent.label, seed),
        fingerprint(dataset, agent, horizon, seed, log_points),
    )


def plan(config: BanditConfig) -> list[Task]:
    """The tasks still to run (finished runs with a matching fingerprint are skipped; diverged
    ones are run again)."""
    tasks = []
    for ds in config.datasets:
        problem = envs.make_problem(ds.name, data_dir=config.data_dir, **ds.settings)
        horizon = config.horizon_of(ds, problem.default_horizon)
        for ag in config.agents:
            todo = tuple(
                s
                for s in config.seeds
                if not is_done(config.out, ds, ag, horizon, s, config.log_points)
            )
            groups = [todo] if config.vectorize else [(s,) for s in todo]
            for seeds in groups:
                if seeds:
                    tasks.append(
                        Task(
                            ds,
                            ag,
                            seeds,
                            horizon,
                            config.device,
                            config.log_points,
                            config.data_dir,
                        )
                    )
    return tasks


def log_steps(horizon: int, points: int) -> np.ndarray:
    return np.unique(np.linspace(1, horizon, min(points, horizon)).round().astype(int))


def execute(task: Task, progress: Callable[[int], None] = lambda n: None) -> TaskOutput:
    """Run one task, S trials of one agent on one dataset as one batch; returns the trials'
    TensorBoard runs and result files for the driver to store.

    A trial whose training stops (:class:`~ivi_rl.agents.bandits.TrialsDiverged`) is
    recorded with its step and error (a diverged record and its TensorBoard run up to that
    step, with the error as text), and the task runs again without it: trials of a batch
    are independent, so the others' results are those of an uninterrupted run."""
    return in_scratch(_execute, task, progress, f"{task.dataset.label}/{task.agent.label}")


def _execute(task: Task, progress: Callable[[int], None], scratch: Path) -> TaskOutput:
    counter = CappedProgress(progress, len(task.seeds) * task.horizon)
    seeds, files, diverged = list(task.seeds), {}, []
    for attempt in itertools.count():
        folder = scratch / f"attempt_{attempt}"
        try:
            output = _run_trials(task, tuple(seeds), counter, folder) if seeds else None
            break
        except TrialsDiverged as err:
            for seed in err.seeds:
                found = Divergence(task.dataset.label, task.agent.label, seed, err.step, err.reason)
                files.update(_diverged_files(task, found, folder))
                diverged.append(found)
            seeds = [s for s in seeds if s not in err.seeds]
    counter.finish()
    clear = tuple(run_paths(task.dataset.label, task.agent.label, s)[0] for s in task.seeds)
    finished = {} if output is None else output
    # a redone trial's old events go; the result files, the resume keys, are written last
    ordered = sorted({**finished, **files}.items(), key=lambda item: item[0].startswith("results/"))
    return TaskOutput(dict(ordered), clear=clear, diverged=tuple(diverged))


def _diverged_files(task: Task, divergence: Divergence, attempt: Path) -> dict[str, bytes]:
    """A diverged trial's TensorBoard run (its curves up to the step that failed, and the
    error as text) and its diverged record."""
    from torch.utils.tensorboard import SummaryWriter

    tb, result = run_paths(task.dataset.label, task.agent.label, divergence.seed)
    with SummaryWriter(str(attempt / tb)) as writer:
        writer.add_text("diverged", f"diverged at step {divergence.step}: {divergence.message}")
    key = fingerprint(task.dataset, task.agent, task.horizon, divergence.seed, task.log_points)
    return {**folder_files(attempt / tb, tb), result: diverged_record(key, divergence)}


def _run_trials(
    task: Task, seeds: tuple[int, ...], progress: CappedProgress, scratch: Path
) -> dict[str, bytes]:
    """The files of trials ``seeds`` run as one batch, or ``TrialsDiverged`` (its writers
    closed, so the failed attempt's events are on disk)."""
    from torch.utils.tensorboard import SummaryWriter

    start = time.perf_counter()
    problem = envs.make_problem(task.dataset.name, data_dir=task.data_dir, **task.dataset.settings)
    trials = [problem.sample_trial(task.horizon, seed=s) for s in seeds]
    device = torch.device(task.device)
    contexts = torch.tensor(np.stack([t.contexts for t in trials]), device=device)
    rewards = torch.tensor(np.stack([t.rewards for t in trials]), device=device)
    agent = make_agent(
        task.agent.name,
        problem.num_actions,
        problem.context_dim,
        seeds,
        task.horizon,
        device=device,
        **task.agent.settings,
    )
    paths = [run_paths(task.dataset.label, task.agent.label, s) for s in seeds]
    writers = [SummaryWriter(str(scratch / tb)) for tb, _ in paths]
    log = _Logger(trials, agent, writers)

    def on_mark(t: int, actions: torch.Tensor) -> None:
        done = log.flush(actions, t, contexts[:, t - 1])  # copies actions back in blocks
        progress(done * len(seeds))

    marks = log_steps(task.horizon, task.log_points).tolist()
    try:
        play(agent, contexts, rewards, marks=marks, on_mark=on_mark)
    finally:
        for writer in writers:
            writer.close()
    wall = (time.perf_counter() - start) / len(seeds)
    files, results = {}, {}
    for i, (seed, (tb, result)) in enumerate(zip(seeds, paths, strict=True)):
        files.update(folder_files(scratch / tb, tb))
        results[result] = npz_bytes(
            fingerprint=np.array(
                fingerprint(task.dataset, task.agent, task.horizon, seed, task.log_points)
            ),
            log_steps=np.array(log.steps),
            cumulative_regret=np.array(log.cumulative[i]),
            regret=log.regret[i].astype(np.float32),
            optimal_fraction=np.array(log.optimal[i]),
            wall_s=np.array(wall),
        )
    return {**files, **results}


class _Logger:
    """Turns actions into the logged curves, a block of steps at a time."""

    def __init__(self, trials, agent, writers) -> None:
        self.trials, self.agent, self.writers = trials, agent, writers
        n = trials[0].horizon
        self.regret = np.zeros((len(trials), n))
        self.reward = np.zeros((len(trials), n))
        self.hits = np.zeros((len(trials), n))
        self.steps: list[int] = []
        self.cumulative: list[list[float]] = [[] for _ in trials]
        self.optimal: list[list[float]] = [[] for _ in trials]
        self.done = 0

    def flush(self, actions: torch.Tensor, t: int, context: torch.Tensor) -> int:
        block = actions[:, self.done : t].cpu().numpy()
        for i, trial in enumerate(self.trials):
            sl = slice(self.done, t)
            steps = np.arange(self.done, t)
            self.regret[i, sl] = trial.optimal_rewards[sl] - trial.expected_rewards[steps, block[i]]
            self.reward[i, sl] = trial.rewards[steps, block[i]]
            self.hits[i, sl] = block[i] == trial.optimal_actions[sl]
        spread = self._spread(context)
        for i, writer in enumerate(self.writers):
            cum = float(self.regret[i, :t].sum())
            self.cumulative[i].append(cum)
            self.optimal[i].append(float(self.hits[i, :t].mean()))
            writer.add_scalar("regret/cumulative", cum, t)
            writer.add_scalar("regret/instant", float(self.regret[i, self.done : t].mean()), t)
            writer.add_scalar("reward/cumulative", float(self.reward[i, :t].sum()), t)
            writer.add_scalar("actions/optimal_fraction", self.optimal[i][-1], t)
            if self.agent.last_loss is not None:
                writer.add_scalar("train/loss", float(self.agent.last_loss[i]), t)
            scale = getattr(self.agent, "last_step_scale", None)
            if scale is not None:
                writer.add_scalar("train/step_scale", float(scale[i]), t)
            if spread is not None and np.isfinite(spread[i]).all():
                # a diverged model (non-finite values) is visible in its regret and loss; the
                # histogram writer cannot take non-finite values
                writer.add_scalar("posterior/spread", float(spread[i].mean()), t)
                writer.add_histogram("posterior/spread_per_arm", spread[i], t)
        self.steps.append(t)
        newly, self.done = t - self.done, t
        return newly

    def _spread(self, context: torch.Tensor) -> np.ndarray | None:
        """Posterior std of every arm's value at the current context, over 16 draws."""
        if not self.agent.is_posterior:
            return None
        with torch.no_grad():
            values = self.agent.posterior_values(
                context, SPREAD_DRAWS, self.agent.diagnostic_streams
            )
        return values.std(0).double().cpu().numpy()


class BanditRunner:
    """The bandit benchmark's part of the pipeline (see :mod:`ivi_rl.pipeline.pipeline`)."""

    name = "bandit runs"
    run_task = staticmethod(execute)

    @staticmethod
    def plan(config: BanditConfig) -> list[Task]:
        return plan(config)

    @staticmethod
    def steps(task: Task) -> int:
        return len(task.seeds) * task.horizon

    @staticmethod
    def report(config: BanditConfig) -> list[dict]:
        from .bandit_report import report

        return report(config)

    @staticmethod
    def labels(config: BanditConfig) -> tuple[list[str], list[str]]:
        return [d.label for d in config.datasets], [a.label for a in config.agents]

    @staticmethod
    def closing(config: BanditConfig) -> str:
        return (
            f"wrote {config.out}/summary.md and {config.out}/regret.png; "
            f"TensorBoard: {tensorboard_command()} --logdir {config.out}/tb"
        )
