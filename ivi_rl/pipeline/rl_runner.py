"""The RL benchmark's tasks: one SB3 agent learning one env for one seed, logged to TensorBoard.

Output:  tb/<env>/<agent>/seed_<s> (SB3's logger: episode return, ``regret/cumulative`` where
the optimal return is known, Deep Sea bad episodes and solve episode, posterior spread),
results/<env>/<agent>/seed_<s>.npz (atomic; resume key), summary.csv / summary.md (episodes
to solve, bsuite score, final training returns and, with ``eval_episodes``, the greedy
policy's mean return at the end and its best over the periodic evaluations, logged as SB3's
``eval/mean_reward``: DQN without epsilon, IVIDQN's posterior mean, NoisyDQN's mean weights,
BootstrappedDQN's ensemble mean, as SB3's ``evaluate_policy(deterministic=True)``) and
solve.png (episodes to solve against N, with 2^N).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from ivi_rl import envs

from .atomic import fingerprint_of, npz_bytes
from .pipeline import tensorboard_command
from .rl_config import (
    RLConfig,
    RLTask,
    agent_on,
    build_agent,
    env_kwargs,
    known_optimal_return,
    make_env,
)
from .store import (
    Divergence,
    TaskOutput,
    diverged_record,
    folder_files,
    in_scratch,
    is_finished,
    run_paths,
)

__all__ = ["EpisodeLogger", "GreedyEvaluation", "RLRunner", "execute_rl"]


def result_file(task: RLTask) -> Path:
    """Where a run's result file lies."""
    return task.config.out / run_paths(task.env.label, task.agent.label, task.seed)[1]


def _fingerprint(task: RLTask) -> str:
    """What a result depends on in the config, with the env's keyword arguments as built
    (its registration's, then the config's): a changed registered default reruns the run."""
    e, a = task.env, task.agent
    return fingerprint_of(
        e.id,
        env_kwargs(e),
        e.episodes,
        e.timesteps,
        e.eval_episodes,
        e.eval_every,
        a.name,
        a.settings,
        task.seed,
        task.config.stop_when_solved,
    )


def _finished(task: RLTask) -> bool:
    return is_finished(result_file(task), _fingerprint(task))


class EpisodeLogger(BaseCallback):
    """Episode returns; where the optimal return is known (Deep Sea) the cumulative regret under
    the bandits' tag, the bad-episode count and the solve episode; progress reporting."""

    def __init__(
        self,
        optimal: float | None,
        stop_when_solved: bool,
        progress: Callable[[int], None],
        solve_rule: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.optimal, self.stop_when_solved, self.progress = optimal, stop_when_solved, progress
        self.solve_rule = solve_rule or {}  # envs.solve_episode's threshold and min_episode
        self.returns: list[float] = []
        self.bad: list[bool] = []
        self.denoised: list[float] = []  # bsuite's cumulative treasures (Deep Sea)
        self.regret = 0.0
        self.solved: int | None = None
        self._pending = 0

    def _on_step(self) -> bool:
        self._pending += 1
        if self._pending >= 500:
            self.progress(self._pending)
            self._pending = 0
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done and "episode" in info:
                self._episode(info)
        return not (self.stop_when_solved and self.solved is not None)

    def _episode(self, info: dict) -> None:
        ret = float(info["episode"]["r"])
        self.returns.append(ret)
        self.logger.record("rollout/episode_return", ret)
        if self.optimal is not None:
            self.regret += self.optimal - ret
            self.logger.record("regret/cumulative", self.regret)
        if "bad_episode" in info:
            self.bad.append(bool(info["bad_episode"]))
            self.denoised.append(float(info.get("denoised_return", 0.0)))
            self.logger.record("deep_sea/total_bad_episodes", int(sum(self.bad)))
            if self.solved is None:
                self.solved = envs.solve_episode(self.bad, **self.solve_rule)
            if self.solved is not None:
                self.logger.record("deep_sea/solved_episode", self.solved)
        if len(self.returns) % 10 == 0 or self.solved is not None:
            self.logger.dump(self.num_timesteps)


class GreedyEvaluation(BaseCallback):
    """Returns of ``eval_episodes`` episodes of the greedy policy (SB3's ``evaluate_policy``,
    deterministic: DQN without epsilon, IVIDQN's posterior mean) every ``eval_every`` steps
    and at the end, on an env seeded apart from training; its time is kept apart from the
    learning wall time."""

    def __init__(self, task: RLTask):
        super().__init__()
        self.spec = task.env
        self.env = make_env(task.env) if task.env.eval_episodes else None
        if self.env is not None:
            self.env.reset(seed=10_000 + task.seed)  # evaluation episodes differ from training's
        self.steps: list[int] = []
        self.returns: list[list[float]] = []
        self.seconds = 0.0

    def _on_step(self) -> bool:
        every = self.spec.eval_every
        if every and self.num_timesteps % every == 0:
            self.evaluate()
        return True

    def evaluate(self) -> None:
        step = self.model.num_timesteps
        if self.env is None or step in self.steps[-1:]:
            return
        start = time.perf_counter()
        returns, _ = evaluate_policy(
            self.model,
            self.env,
            n_eval_episodes=self.spec.eval_episodes,
            deterministic=True,
            return_episode_rewards=True,
        )
        self.steps.append(step)
        self.returns.append([float(r) for r in returns])
        self.logger.record("eval/mean_reward", float(np.mean(returns)))  # SB3's EvalCallback tag
        self.logger.dump(step)
        self.seconds += time.perf_counter() - start


def execute_rl(task: RLTask, progress: Callable[[int], None] = lambda n: None) -> TaskOutput:
    """Run one (env, agent, seed); returns its TensorBoard run and result file for the driver
    to store. A run whose training stops (a non-finite loss, or one above the agent's
    ``max_loss``) returns a diverged record and its TensorBoard run up to that step, with the
    error as text."""
    where = f"{task.env.label}/{task.agent.label}, seed {task.seed}"
    return in_scratch(_execute, task, progress, where)


def _execute(task: RLTask, progress: Callable[[int], None], scratch: Path) -> TaskOutput:
    tb, result = run_paths(task.env.label, task.agent.label, task.seed)
    env = make_env(task.env)
    base = env.unwrapped
    optimal = known_optimal_return(env)
    model = build_agent(task.agent, env, seed=task.seed, device=task.config.device)
    model.set_logger(configure(str(scratch / tb), ["tensorboard"]))
    size = getattr(base, "size", None)
    budget = task.env.timesteps or task.env.episodes * (size or env.spec.max_episode_steps or 1)
    rule = envs.solve_rule(base.deterministic) if isinstance(base, envs.DeepSeaEnv) else None
    stop = task.config.stop_when_solved and size is not None
    callback = EpisodeLogger(optimal, stop, progress, rule)
    evaluation = GreedyEvaluation(task)
    start = time.perf_counter()
    try:
        model.learn(
            total_timesteps=budget,
            callback=CallbackList([callback, evaluation]),
            log_interval=10_000_000,
        )
    except FloatingPointError as err:
        found = Divergence(
            task.env.label, task.agent.label, task.seed, model.num_timesteps, str(err)
        )
        return _diverged(task, found, model, scratch, size)
    # wall time of learning only (per-step cost comparable across agents)
    wall_s = time.perf_counter() - start - evaluation.seconds
    evaluation.evaluate()  # the final policy, unless the last periodic evaluation was it
    model.logger.dump(model.num_timesteps)
    model.logger.close()
    returns = np.array(callback.returns)
    arrays = dict(
        fingerprint=np.array(_fingerprint(task)),
        returns=returns,
        bad=np.array(callback.bad, dtype=bool),
        denoised=np.array(callback.denoised, dtype=np.float64),
        solved=np.array(-1 if callback.solved is None else callback.solved),
        size=np.array(-1 if size is None else size),
        seed=np.array(task.seed),
        steps=np.array(model.num_timesteps),
        wall_s=np.array(wall_s),
        eval_steps=np.array(evaluation.steps, dtype=np.int64),
        eval_returns=np.array(evaluation.returns, dtype=float).reshape(
            len(evaluation.steps), task.env.eval_episodes
        ),
    )
    progress(callback._pending)
    # a redone run's old events go; the result file, the resume key, is written last
    files = {**folder_files(scratch / tb, tb), result: npz_bytes(**arrays)}
    return TaskOutput(files, clear=(tb,))


def _diverged(
    task: RLTask, divergence: Divergence, model, scratch: Path, size: int | None
) -> TaskOutput:
    """A diverged run's output: its TensorBoard run so far, the error as text, its record."""
    from torch.utils.tensorboard import SummaryWriter

    tb, result = run_paths(task.env.label, task.agent.label, task.seed)
    model.logger.dump(model.num_timesteps)
    model.logger.close()
    with SummaryWriter(str(scratch / tb)) as writer:
        writer.add_text("diverged", f"diverged at step {divergence.step}: {divergence.message}")
    record = diverged_record(
        _fingerprint(task), divergence, size=np.array(-1 if size is None else size)
    )
    files = {**folder_files(scratch / tb, tb), result: record}
    return TaskOutput(files, clear=(tb,), diverged=(divergence,))


class RLRunner:
    """The RL benchmark's part of the pipeline (see :mod:`ivi_rl.pipeline.pipeline`)."""

    name = "rl runs"
    run_task = staticmethod(execute_rl)

    @staticmethod
    def plan(config: RLConfig) -> list[RLTask]:
        tasks = [
            RLTask(e, agent_on(a, e), s, config)
            for e in config.envs
            for a in config.agents
            for s in config.seeds
        ]
        return [t for t in tasks if not _finished(t)]

    @staticmethod
    def steps(task: RLTask) -> int:
        return task.env.timesteps or task.env.episodes * task.env.kwargs.get("size", 200)

    @staticmethod
    def report(config: RLConfig) -> list[dict]:
        from .rl_report import report

        return report(config)

    @staticmethod
    def labels(config: RLConfig) -> tuple[list[str], list[str]]:
        """Run folders' groups and agents: the report's Deep Sea view's and the agents
        ``select_agents`` leaves out among them."""
        groups, agents = [e.label for e in config.envs], [a.label for a in config.agents]
        unselected = [a.label for a in config.unselected]
        return [*groups, "deep_sea_solve"], [*agents, *unselected, "2^N"]

    @staticmethod
    def closing(config: RLConfig) -> str:
        return (
            f"wrote {config.out}/summary.md; TensorBoard: {tensorboard_command()} "
            f"--logdir {config.out}/tb"
        )
