"""The front door for bandit agents: run one on a problem, or drive it yourself.

    from ivi_rl import envs
    from ivi_rl.agents.bandits import run_agent

    problem = envs.ClassificationProblem(x, y)  # your labelled data; or ArraysProblem(X, R)
    result = run_agent("ivi_ts", problem, horizon=2000, seeds=[0, 1, 2])
    result.cumulative_regret[:, -1]  # final regret per trial

:func:`play` is the Showdown loop itself (act, observe the pulled arm's reward), shared with
the benchmark runner. :class:`OneTrial` wraps an agent for a loop of your own, one context
and one reward at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from ivi_rl import envs

from .base import BanditAgent

__all__ = ["BanditResult", "OneTrial", "play", "run_agent"]


def play(
    agent: BanditAgent,
    contexts: torch.Tensor,
    rewards: torch.Tensor,
    *,
    marks: Sequence[int] = (),
    on_mark: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run the agent through whole trials: contexts [S, n, d], full-information rewards
    [S, n, k]; it sees only the pulled arm's reward. Returns the actions [S, n].
    ``on_mark(t, actions)`` is called after step t for every t in ``marks``."""
    s, n = contexts.shape[:2]
    rows = torch.arange(s, device=contexts.device)
    actions = torch.zeros(s, n, dtype=torch.long, device=contexts.device)
    marks = set(marks)
    for t in range(n):
        a = agent.act(contexts[:, t])
        agent.observe(contexts[:, t], a, rewards[rows, t, a])
        actions[:, t] = a
        if on_mark is not None and t + 1 in marks:
            on_mark(t + 1, actions)
    return actions


@dataclasses.dataclass(frozen=True)
class BanditResult:
    """What :func:`run_agent` returns; every array is [trials, horizon]."""

    seeds: list[int]
    actions: np.ndarray
    regret: np.ndarray
    """Expected regret of every step (the best arm's expected reward minus the pulled one's)."""
    rewards: np.ndarray
    """Realised reward of every pulled arm."""

    @property
    def cumulative_regret(self) -> np.ndarray:
        return self.regret.cumsum(axis=1)


def run_agent(
    agent: str,
    problem,
    *,
    horizon: int | None = None,
    seeds: Sequence[int] = (0,),
    device: str | torch.device | None = None,
    threads: int | None = 1,
    **settings,
) -> BanditResult:
    """Run the named agent (``agents.bandits.AGENTS``) with ``settings`` on ``problem`` (an
    ``envs`` problem, e.g. ``envs.ClassificationProblem(x, y)`` or ``envs.ArraysProblem(
    contexts, rewards)``, or a dataset name for ``envs.make_problem``) for one trial per seed,
    all trials batched. ``threads``: torch's thread count while it runs (1 by default: these
    networks are small, and one thread per process was 6x faster than torch's default on a
    2-core machine; None keeps the current setting)."""
    if isinstance(problem, str):
        problem = envs.make_problem(problem)
    if not isinstance(problem, envs.BanditProblem):
        raise TypeError(
            f"problem={type(problem).__name__} is not accepted; accepted: an envs problem "
            "(envs.ClassificationProblem(x, y), envs.ArraysProblem(contexts, rewards), ...) "
            "or a dataset name"
        )
    horizon = problem.default_horizon if horizon is None else horizon
    trials = [problem.sample_trial(horizon, seed=s) for s in seeds]
    from . import make_agent

    with _threads(threads):
        bandit = make_agent(
            agent,
            problem.num_actions,
            problem.context_dim,
            list(seeds),
            horizon,
            device=device,
            **settings,
        )
        kw = {"device": bandit.device, "dtype": bandit.dtype}
        ctx = torch.tensor(np.stack([t.contexts for t in trials]), **kw)
        rew = torch.tensor(np.stack([t.rewards for t in trials]), **kw)
        actions = play(bandit, ctx, rew).cpu().numpy()
    steps = np.arange(horizon)
    return BanditResult(
        seeds=list(seeds),
        actions=actions,
        regret=np.stack([t.regret(a) for t, a in zip(trials, actions, strict=True)]),
        rewards=np.stack([t.rewards[steps, a] for t, a in zip(trials, actions, strict=True)]),
    )


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r} is not accepted; accepted: an int >= 1 or None")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class OneTrial:
    """One trial of an agent in the Showdown's shape, for a loop of your own:

    trial = OneTrial("ivi_ts", num_actions=3, context_dim=5, horizon=1000, seed=0)
    arm = trial.action(context)  # context: [d] array
    trial.update(context, arm, reward)
    """

    def __init__(
        self,
        agent: str,
        *,
        num_actions: int,
        context_dim: int,
        horizon: int,
        seed: int = 0,
        **settings,
    ) -> None:
        from . import make_agent

        self.agent = make_agent(agent, num_actions, context_dim, [seed], horizon, **settings)

    def _context(self, context) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(context), dtype=self.agent.dtype, device=self.agent.device)
        if x.shape != (self.agent.context_dim,):
            raise ValueError(
                f"context has shape {tuple(x.shape)}; expected ({self.agent.context_dim},)"
            )
        return x[None]

    def action(self, context) -> int:
        """The arm to pull for ``context``."""
        return int(self.agent.act(self._context(context))[0])

    def update(self, context, action: int, reward: float) -> None:
        """Record the reward of ``action`` at ``context`` (the agent retrains on schedule)."""
        if not 0 <= int(action) < self.agent.num_actions:
            raise ValueError(f"action={action!r} is not an arm in [0, {self.agent.num_actions})")
        a = torch.tensor([int(action)], device=self.agent.device)
        r = torch.tensor([float(reward)], dtype=self.agent.dtype, device=self.agent.device)
        self.agent.observe(self._context(context), a, r)
