"""The bandit-agent interface, batched over S independent trials.

An agent runs S trials at once (S = 1 is the ordinary single trial): ``act`` maps contexts
[S, d] to arms [S]; ``observe`` records (context, arm, reward) for every trial and trains on
the Showdown schedule (every ``train_every`` steps, ``train_steps`` minibatch steps on all
data so far). Each agent declares its settings as a dataclass; unknown settings and wrong
types fail at construction, naming the setting, the value and what is accepted.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from ivi_rl.checks import check_choice, resolve_device

from .buffer import TrialBuffer
from .streams import TrialStreams

__all__ = ["BanditAgent", "NeuralSettings", "Settings", "TrialsDiverged", "build_settings"]


class TrialsDiverged(FloatingPointError):
    """Training of some trials stopped: a retrain's loss was not finite.

    Attributes:
        seeds: the trials' seeds.
        step: the step whose retrain failed.
        reason: what happened, without the agent and the seeds (one trial's message)."""

    def __init__(self, message: str, seeds: list[int], step: int, reason: str) -> None:
        super().__init__(message)
        self.seeds, self.step, self.reason = seeds, step, reason


@dataclasses.dataclass(frozen=True)
class Settings:
    """Settings every agent has."""

    initial_pulls: int = 2
    """Round-robin pulls of every arm before the agent decides (the Showdown's default)."""


@dataclasses.dataclass(frozen=True)
class NeuralSettings(Settings):
    """Defaults shared by every neural agent: the Showdown reproductions' network (two hidden
    layers of 100 units) with the Showdown code's batch and schedule (t_f = 50, t_s = 100)."""

    hidden: tuple[int, ...] = (100, 100)
    """Hidden layer widths."""
    batch_size: int = 512
    """Minibatch size, drawn with replacement from all data so far."""
    train_every: int = 50
    """t_f: retrain after every this many steps."""
    train_steps: int = 100
    """t_s: minibatch steps per retrain."""


def build_settings(cls: type[Settings], agent: str, values: dict[str, Any]) -> Settings:
    """``cls(**values)`` with an error naming the setting, the value and the accepted ones."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in fields:
            raise TypeError(
                f"agent {agent!r} got unknown setting {key!r}; accepted: {', '.join(fields)}"
            )
        _check_type(agent, key, value, hints[key])
    if isinstance(values.get("hidden"), list):
        values = {**values, "hidden": tuple(values["hidden"])}
    settings = cls(**values)
    for key in ("initial_pulls", "batch_size", "train_every", "train_steps"):
        if key in fields and getattr(settings, key) < (0 if key == "initial_pulls" else 1):
            raise ValueError(f"agent {agent!r}: {key}={getattr(settings, key)} must be positive")
    return settings


def _check_type(agent: str, key: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint)
    if origin is tuple:
        ok = isinstance(value, (tuple, list)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
        )
        accepted = "a list of positive ints"
    elif hint is float:
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
        accepted = "a finite number"
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        accepted = "an int"
    elif hint is bool:
        ok, accepted = isinstance(value, bool), "true or false"
    elif typing.get_origin(hint) is typing.Literal:
        check_choice(f"agent {agent!r}: {key}", value, typing.get_args(hint))
        return
    else:
        ok, accepted = isinstance(value, hint), getattr(hint, "__name__", str(hint))
    if not ok:
        raise TypeError(f"agent {agent!r}: {key}={value!r} is not accepted; expected {accepted}")


class BanditAgent(ABC):
    """Base class. Subclasses set ``name``, ``settings_class`` and implement ``_act``."""

    name: ClassVar[str]
    settings_class: ClassVar[type[Settings]] = Settings
    is_posterior: ClassVar[bool] = False
    """Whether the agent samples from a posterior (it then reports a posterior spread)."""

    def __init__(
        self,
        num_actions: int,
        context_dim: int,
        seeds: Sequence[int],
        horizon: int,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        **settings: Any,
    ) -> None:
        if not seeds:
            raise ValueError("seeds must name at least one trial")
        for argument, value, least in (
            ("num_actions", num_actions, 2),
            ("context_dim", context_dim, 1),
            ("horizon", horizon, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise ValueError(
                    f"{self.name}: {argument}={value!r} is not accepted; "
                    f"accepted: an int >= {least}"
                )
        self.settings = build_settings(self.settings_class, self.name, settings)
        self.num_actions, self.context_dim = num_actions, context_dim
        self.seeds, self.horizon = list(seeds), horizon
        self.device, self.dtype = resolve_device(device), dtype
        self.num_trials = len(self.seeds)
        self.buffer = TrialBuffer(self.num_trials, horizon, context_dim, self.device, dtype)
        self.act_streams = TrialStreams(self.seeds, "act", self.device)
        self.train_streams = TrialStreams(self.seeds, "train", self.device)
        # Diagnostics (posterior spread for logging) draw from their own stream, so how often a
        # run is logged never changes its decisions.
        self.diagnostic_streams = TrialStreams(self.seeds, "diagnostics", self.device)
        self.last_loss: torch.Tensor | None = None
        """[S] mean training loss of the latest retrain (None before the first)."""

    @property
    def t(self) -> int:
        """Steps observed so far."""
        return self.buffer.size

    def act(self, contexts: torch.Tensor) -> torch.Tensor:
        """Arms [S] for contexts [S, d]."""
        if self.t < self.num_actions * self.settings.initial_pulls:
            return torch.full((self.num_trials,), self.t % self.num_actions, device=self.device)
        return self._act(contexts)

    def observe(self, contexts: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor) -> None:
        """Record one step of every trial; retrain when the schedule says so.

        Non-finite contexts or rewards, and a retrain whose loss is not finite, raise
        ``FloatingPointError`` naming the agent, the trials and the step: nothing non-finite
        reaches training or a summary silently."""
        for name, value in (("contexts", contexts), ("rewards", rewards)):
            bad = ~torch.isfinite(value).reshape(self.num_trials, -1).all(1)
            if bad.any():
                self._fail(f"observed {name} are not finite", bad, self.t + 1)
        self.buffer.add(contexts, actions, rewards)
        self._observe(contexts, actions, rewards)
        every = getattr(self.settings, "train_every", None)
        if every is not None and self.t % every == 0:
            self.last_loss = self._train()
            if self.last_loss is not None and not torch.isfinite(self.last_loss).all():
                seeds = self._seeds_of(~torch.isfinite(self.last_loss))
                reason = (
                    "the training loss is not finite (lower the learning rate 'lr', or check "
                    f"the data's scale) at step {self.t}"
                )
                raise TrialsDiverged(
                    f"agent {self.name!r}: {reason}, trial seed(s) {seeds}", seeds, self.t, reason
                )

    def _seeds_of(self, trials: torch.Tensor) -> list[int]:
        return [s for s, b in zip(self.seeds, trials.tolist(), strict=True) if b]

    def _fail(self, what: str, trials: torch.Tensor, step: int) -> None:
        raise FloatingPointError(
            f"agent {self.name!r}: {what} at step {step}, trial seed(s) {self._seeds_of(trials)}"
        )

    def reward_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[S, 1] mean and std of every trial's rewards so far (std 1 where constant): the
        affine map agents use to standardise their training targets."""
        seen = self.buffer.rewards[:, : self.t]
        std = seen.std(1, keepdim=True) if self.t > 1 else torch.ones_like(seen[:, :1])
        return seen.mean(1, keepdim=True), torch.where(std > 0, std, torch.ones_like(std))

    def training_targets(self, rewards: torch.Tensor) -> torch.Tensor:
        """Rewards [S, ...] in the units the agent trains on: raw under the setting
        ``reward_scaling='none'``, divided by the std of :meth:`reward_moments` under
        'scale' (a reward of 0 stays 0), else standardised by both moments (an affine map per
        trial, so every argmax is unchanged)."""
        scaling = self.settings.reward_scaling
        if scaling == "none":
            return rewards
        mean, std = self.reward_moments()
        shape = (-1, *[1] * (rewards.dim() - 1))
        if scaling == "scale":
            return rewards / std.view(shape)
        return (rewards - mean.view(shape)) / std.view(shape)

    def posterior_values(
        self, contexts: torch.Tensor, num_samples: int, streams: TrialStreams
    ) -> torch.Tensor | None:
        """Arm values [K, S, k] of K posterior draws at contexts [S, d], with randomness from
        ``streams`` (posterior agents only; others return None)."""
        return None

    @abstractmethod
    def _act(self, contexts: torch.Tensor) -> torch.Tensor: ...

    def _observe(self, contexts, actions, rewards) -> None:  # noqa: B027 - optional hook
        """Per-step bookkeeping beyond the buffer (e.g. a linear posterior update)."""

    def _train(self) -> torch.Tensor | None:
        """One retrain on all data so far; returns the mean loss per trial."""
        return None
