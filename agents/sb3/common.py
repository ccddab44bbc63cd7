"""Pieces shared by the posterior-sampling DQN variants."""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.utils import polyak_update

__all__ = [
    "CheckedLoad",
    "EpisodicSampling",
    "NamedRuns",
    "NoEpsilon",
    "check_number",
    "check_spaces",
]


MAX_LOSS = 1e10
"""Default ``max_loss``: a squared TD error of 1e10 means Q-values of order 1e5, past any
env whose rewards stay within +-1000 at gamma = 0.99 (|Q| <= 1e5): training has diverged."""


def finite_loss(algorithm, loss: torch.Tensor) -> float:
    """The loss as a float, or ``FloatingPointError`` naming the algorithm and the step when
    it is not finite or exceeds the algorithm's ``max_loss`` (training then stops instead of
    writing on with diverged weights)."""
    value = loss.item()
    limit = getattr(algorithm, "max_loss", None)
    if not math.isfinite(value) or (limit is not None and value > limit):
        why = f" (above max_loss={limit:g}: diverged)" if math.isfinite(value) else ""
        raise FloatingPointError(
            f"{type(algorithm).__name__}: the training loss is {value:.3g} at step "
            f"{algorithm.num_timesteps} (update {algorithm._n_updates + 1}){why}; lower the "
            "learning rate or check the rewards' scale"
        )
    return value


LR_ALSO = (
    " or a schedule of the progress remaining, e.g. stable_baselines3.common.utils's"
    " LinearSchedule(0.02, 0.0, 1.0) (a config's 'lin_0.02')"
)


def check_number(argument: str, value: object, *, positive: bool, also: str = "") -> float:
    """``value`` as a float if it is a finite int or float, > 0 (``positive``) or >= 0; else
    one error naming the argument and what is accepted (``also``: other accepted values)."""
    bound = "> 0" if positive else ">= 0"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not (value > 0 if positive else value >= 0)
    ):
        raise ValueError(
            f"{argument}={value!r} is not accepted; accepted: a finite number {bound}{also}"
        )
    return float(value)


def check_spaces(algorithm: str, env) -> None:
    """A Discrete action space and an observation space SB3's DQN takes, or one error."""
    if env is None or isinstance(env, str):
        return  # SB3 builds string envs itself and checks them again in _setup_model
    action_space, observation_space = env.action_space, env.observation_space
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(
            f"{algorithm} needs a Discrete action space (one Q-value per action); the env has "
            f"{action_space}. For continuous actions use an actor-critic algorithm."
        )
    accepted = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
    if not isinstance(observation_space, accepted):
        raise ValueError(
            f"{algorithm} needs a Box, Discrete, MultiDiscrete or MultiBinary observation space "
            f"(Discrete ones are one-hot encoded, as SB3's DQN does); the env has "
            f"{observation_space} (wrap it, e.g. gymnasium.wrappers.FlattenObservation)"
        )


class CheckedLoad:
    """``load`` as SB3's, with one clear error for a path that does not exist (SB3 names it
    with a second '.zip') and for a file that is not a saved model (torch's message suggests
    the unsafe ``weights_only=False``; this never unpickles)."""

    @classmethod
    def load(cls, path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)):
            p = Path(path)
            if not p.exists() and not p.with_name(p.name + ".zip").exists():
                raise FileNotFoundError(f"{cls.__name__}.load: {p} does not exist")
        try:
            return super().load(path, *args, **kwargs)
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError) as err:
            raise ValueError(
                f"{cls.__name__}.load: {path} is not a readable saved {cls.__name__} "
                f"({type(err).__name__}); save the model again with .save()"
            ) from None


class NamedRuns:
    """TensorBoard runs named after the algorithm (``IVIDQN_1``), not SB3's 'DQN_1'."""

    def learn(self, *args, tb_log_name: str | None = None, **kwargs):
        return super().learn(*args, tb_log_name=tb_log_name or type(self).__name__, **kwargs)


class NoEpsilon(NamedRuns, CheckedLoad):
    """Mixin (before DQN in the bases): exploration comes from the network, never epsilon.

    Warm-up steps act on the network too (its prior), instead of SB3's uniform dithering.
    The constructor checks the spaces, ``learning_rate`` (a finite number > 0 or a schedule:
    a callable of the progress remaining, as SB3 takes) and ``tau``, and refuses epsilon
    settings.
    ``max_loss`` (default :data:`MAX_LOSS`, None: off): a training loss above it stops
    learning with ``FloatingPointError``, as a non-finite one does.
    """

    def __init__(
        self, policy, env, learning_rate, max_loss: float | None = MAX_LOSS, **kwargs
    ) -> None:
        name = type(self).__name__
        check_spaces(name, env)
        if max_loss is not None and not (isinstance(max_loss, int | float) and max_loss > 0):
            raise ValueError(f"max_loss={max_loss!r} is not accepted; accepted: a number > 0")
        self.max_loss = None if max_loss is None else float(max_loss)
        if not callable(learning_rate):
            learning_rate = check_number(
                "learning_rate", learning_rate, positive=True, also=LR_ALSO
            )
        tau = kwargs.get("tau", 1.0)
        if isinstance(tau, bool) or not isinstance(tau, int | float) or not 0 < tau <= 1:
            raise ValueError(f"tau={tau!r} is not accepted; accepted: a number in (0, 1]")
        for key in ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps"):
            if kwargs.get(key):
                raise ValueError(
                    f"{key}={kwargs[key]!r}: {name} explores by posterior sampling, epsilon is 0"
                )
        super().__init__(
            policy,
            env,
            learning_rate,
            exploration_initial_eps=0.0,
            exploration_final_eps=0.0,
            **kwargs,
        )

    def _sample_action(self, learning_starts, action_noise=None, n_envs=1):
        action, _ = self.predict(self._last_obs, deterministic=False)
        return action, action

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return self.policy.predict(observation, state, episode_start, deterministic)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's gradient step, once for every posterior-sampling DQN: sample a minibatch,
        ``self._loss(data)``, stop on a non-finite loss, backward (scaled by
        ``self._step_scale(data, loss)``), clip the gradient norm at ``max_grad_norm``, step;
        then log the mean loss and ``self._spread(last minibatch)``. Subclasses implement only
        these hooks."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses, data = [], None
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            loss = self._loss(data)
            losses.append(finite_loss(self, loss))
            self.policy.optimizer.zero_grad()
            scale = self._step_scale(data, losses[-1])
            (loss if scale == 1.0 else loss * scale).backward()  # x 1.0 is exact: skipped
            if math.isfinite(self.max_grad_norm):  # at inf clipping multiplies by 1.0
                torch.nn.utils.clip_grad_norm_(self._clipped_parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
        self._n_updates += gradient_steps
        self._record_training(losses, self._spread(data, gradient_steps))

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_clip_list", "_target_lists"]

    def _per_policy(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per policy object and kept in ``self.__dict__[name]``
        (not saved): lists SB3 would rebuild from the module tree at every step."""
        cached = self.__dict__.get(name)
        if cached is None or cached[0] is not self.policy:
            cached = self.__dict__[name] = (self.policy, make())
        return cached[1]

    def _clipped_parameters(self) -> list[torch.nn.Parameter]:
        """The policy's parameters, listed once (SB3 passes a fresh generator per step)."""
        return self._per_policy("_clip_list", lambda: list(self.policy.parameters()))

    def _on_step(self) -> None:
        """SB3's DQN step hook (the target network's update every ``target_update_interval``
        steps, the exploration rate), with the update over parameter lists made once and
        applied by torch's foreach kernels: the same arithmetic as SB3's ``polyak_update``
        (scale by 1 - tau, add tau times the online weights), without walking both module
        trees at every step."""
        self._n_calls += 1
        if self._n_calls % max(self.target_update_interval // self.n_envs, 1) == 0:
            online, target = self._target_parameters()
            with torch.no_grad():
                torch._foreach_mul_(target, 1 - self.tau)
                torch._foreach_add_(target, online, alpha=self.tau)
            polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
        self.exploration_rate = self.exploration_schedule(self._current_progress_remaining)
        self.logger.record("rollout/exploration_rate", self.exploration_rate)

    def _target_parameters(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The online and target Q-networks' parameters, listed once per policy."""
        return self._per_policy("_target_lists", self._list_target_parameters)

    def _list_target_parameters(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        online, target = list(self.q_net.parameters()), list(self.q_net_target.parameters())
        if len(online) != len(target):
            raise RuntimeError("the online and target Q-networks have different parameters")
        return online, target

    def _loss(self, data) -> torch.Tensor:
        """The training loss of one replay minibatch (a scalar with a gradient)."""
        raise NotImplementedError

    def _step_scale(self, data, loss: float) -> float:
        """A factor on this step's learning rates, given the minibatch and its loss (1: none;
        multiplying by exactly 1 changes no gradient)."""
        return 1.0

    def _spread(self, data, gradient_steps: int) -> torch.Tensor | None:
        """The posterior spread to log after a ``train`` call (None: nothing logged)."""
        return None

    def _record_training(self, losses: list[float], spread: torch.Tensor | None) -> None:
        """SB3's training records plus the posterior spread as a scalar and a histogram."""
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))
        if spread is None:
            return
        self.logger.record("posterior/spread", float(spread.mean()))
        self.logger.record(
            "posterior/spread_hist",
            spread.flatten().cpu(),
            exclude=("stdout", "log", "json", "csv"),
        )


class EpisodicSampling(NoEpsilon):
    """Mixin: hold one posterior sample per environment for a whole episode.

    Subclasses implement ``_new_episodes(env_indices)`` (None: every environment), called when
    learning starts and for every environment whose episode just ended (after the transition
    is stored, before the next action).
    """

    def _new_episodes(self, env_indices) -> None:
        raise NotImplementedError

    def _setup_learn(self, *args, **kwargs):
        out = super()._setup_learn(*args, **kwargs)
        self._new_episodes(None)
        return out

    def _store_transition(self, replay_buffer, buffer_action, new_obs, reward, dones, infos):
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        done = np.flatnonzero(dones)
        if done.size:
            self._new_episodes(done)
