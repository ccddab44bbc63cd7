"""The bandit benchmark runner: the Showdown loop over datasets x agents x seeds.

Within a trial every agent sees the same contexts and reward draws (a trial is a function of
the dataset settings, the horizon and the seed). Seeds of one (dataset, agent) run as one
batched computation when ``vectorize`` is on (the agents are batched over trials), otherwise
one at a time; tasks run in parallel worker processes.

Output directory:
    tb/<dataset>/<agent>/seed_<s>/   TensorBoard run per trial (same tags for every agent)
    tb/<dataset>/<agent>/mean/       mean curves over seeds
    results/<dataset>/<agent>/seed_<s>.npz   per-trial regret curves (atomic; resume key)
    summary.csv, summary.md, mean_rank.csv, regret.png
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from queue import Empty

import numpy as np
import torch
from tqdm.auto import tqdm

from ivi_rl import envs
from ivi_rl.agents.bandits import make_agent, play

from .atomic import fingerprint_of, stored_fingerprint_matches, write_npz
from .bandit_config import AgentSpec, BanditConfig, DatasetSpec

__all__ = ["TAGS", "Task", "plan", "run_tasks"]

TAGS = (
    "regret/cumulative",
    "regret/instant",
    "reward/cumulative",
    "actions/optimal_fraction",
    "train/loss",
    "posterior/spread",
)
"""Scalar tags of every run (``posterior/spread`` only for posterior agents), plus the
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
    out: Path
    data_dir: str | None


def run_dir(out: Path, kind: str, dataset: str, agent: str, seed: int | None = None) -> Path:
    base = Path(out) / kind / dataset / agent
    return base if seed is None else base / f"seed_{seed}"


def result_path(out: Path, dataset: str, agent: str, seed: int) -> Path:
    return Path(out) / "results" / dataset / agent / f"seed_{seed}.npz"


def fingerprint(
    dataset: DatasetSpec, agent: AgentSpec, horizon: int, seed: int, log_points: int
) -> str:
    """What determines a run's stored result; it is reused only if this matches."""
    return fingerprint_of(
        dataset.name, dataset.settings, agent.name, agent.settings, horizon, seed, log_points
    )


def is_finished(
    out: Path, dataset: DatasetSpec, agent: AgentSpec, horizon: int, seed: int, log_points: int
) -> bool:
    return stored_fingerprint_matches(
        result_path(out, dataset.label, agent.label, seed),
        fingerprint(dataset, agent, horizon, seed, log_points),
    )


def plan(config: BanditConfig) -> list[Task]:
    """The tasks still to run (finished runs with a matching fingerprint are skipped)."""
    tasks = []
    for ds in config.datasets:
        problem = envs.make_problem(ds.name, data_dir=config.data_dir, **ds.settings)
        horizon = config.horizon_of(ds, problem.default_horizon)
        for ag in config.agents:
            todo = tuple(
                s
                for s in config.seeds
                if not is_finished(config.out, ds, ag, horizon, s, config.log_points)
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
                            config.out,
                            config.data_dir,
                        )
                    )
    return tasks


def log_steps(horizon: int, points: int) -> np.ndarray:
    return np.unique(np.linspace(1, horizon, min(points, horizon)).round().astype(int))


def execute(task: Task, progress: Callable[[int], None] = lambda n: None) -> None:
    """Run one task: S trials of one agent on one dataset, as one batch."""
    from torch.utils.tensorboard import SummaryWriter

    start = time.perf_counter()
    problem = envs.make_problem(task.dataset.name, data_dir=task.data_dir, **task.dataset.settings)
    trials = [problem.sample_trial(task.horizon, seed=s) for s in task.seeds]
    device = torch.device(task.device)
    contexts = torch.tensor(np.stack([t.contexts for t in trials]), device=device)
    rewards = torch.tensor(np.stack([t.rewards for t in trials]), device=device)
    agent = make_agent(
        task.agent.name,
        problem.num_actions,
        problem.context_dim,
        task.seeds,
        task.horizon,
        device=device,
        **task.agent.settings,
    )
    writers = []
    for seed in task.seeds:
        path = run_dir(task.out, "tb", task.dataset.label, task.agent.label, seed)
        shutil.rmtree(path, ignore_errors=True)  # a killed run's partial events are redone
        writers.append(SummaryWriter(str(path)))
    log = _Logger(trials, agent, writers)

    def on_mark(t: int, actions: torch.Tensor) -> None:
        done = log.flush(actions, t, contexts[:, t - 1])  # copies actions back in blocks
        progress(done * len(task.seeds))

    marks = log_steps(task.horizon, task.log_points).tolist()
    play(agent, contexts, rewards, marks=marks, on_mark=on_mark)
    wall = (time.perf_counter() - start) / len(task.seeds)
    for i, seed in enumerate(task.seeds):
        writers[i].close()
        write_npz(
            result_path(task.out, task.dataset.label, task.agent.label, seed),
            fingerprint=np.array(
                fingerprint(task.dataset, task.agent, task.horizon, seed, task.log_points)
            ),
            log_steps=np.array(log.steps),
            cumulative_regret=np.array(log.cumulative[i]),
            regret=log.regret[i].astype(np.float32),
            optimal_fraction=np.array(log.optimal[i]),
            wall_s=np.array(wall),
        )


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


_progress_queue = None  # a worker's queue for step counts, set by _init_worker


def _init_worker(parent: int, queue, poll_s: float = 1.0) -> None:
    """Worker initializer: keep the progress queue (a multiprocessing queue can only be handed
    over at process start) and exit when the runner that started us is gone. A runner killed
    by SIGTERM (not Ctrl-C, which reaches the whole process group) would otherwise leave its
    workers running, using the CPU and writing results nobody asked for."""
    global _progress_queue
    _progress_queue = queue
    torch.set_num_threads(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _worker(run: Callable, task) -> None:
    run(task, _progress_queue.put)


def run_tasks(
    tasks: list, workers: int, progress: Callable[[int], None], run: Callable = execute
) -> None:
    """Run ``run(task, progress)`` for every task, inline (one worker) or in spawned processes
    (``run`` must be a module-level function), reporting steps to ``progress``."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            run(task, progress)
        return
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    init = (os.getpid(), queue)
    with ProcessPoolExecutor(workers, ctx, initializer=_init_worker, initargs=init) as pool:
        futures = {pool.submit(_worker, run, task) for task in tasks}
        try:
            while futures:
                finished, futures = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                _drain(queue, progress)
                for future in finished:
                    future.result()  # re-raise a worker's error here
        except BaseException:
            for future in futures:  # a failed task stops the run: start nothing new
                future.cancel()
            raise
    _drain(queue, progress)


def _drain(queue, progress: Callable[[int], None]) -> None:
    while True:
        try:
            progress(queue.get_nowait())
        except Empty:
            return


def tensorboard_command() -> str:
    """How to start TensorBoard from this Python: its script next to the interpreter (a venv's
    bin/, not on PATH outside it) when present, else ``python -m tensorboard.main``."""
    script = Path(sys.executable).parent / "tensorboard"
    return str(script) if script.exists() else f"{sys.executable} -m tensorboard.main"


def is_silent(quiet: bool) -> bool:
    """Progress bars and closing messages are off under ``quiet`` or in CI (``$CI`` set)."""
    return quiet or bool(os.environ.get("CI"))


def run_with_progress(
    tasks: list,
    total: int,
    workers: int | None,
    desc: str,
    silent: bool,
    run: Callable = execute,
) -> None:
    """:func:`run_tasks` behind a progress bar counting ``total`` steps."""
    with tqdm(total=total, unit="step", desc=desc, disable=silent, smoothing=0.05) as bar:
        run_tasks(tasks, workers or default_workers(tasks), bar.update, run)


def default_workers(tasks: list) -> int:
    return max(1, min(len(tasks), os.cpu_count() or 1))
