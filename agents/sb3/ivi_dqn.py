"""IVIDQN: DQN with Thompson sampling from an implicitly regularized variational posterior.

The Q-network is an ``ivi_rl`` variational network (:class:`IVIDQNPolicy`: by default one
MLP per action, a point-estimate hidden layer and a full-covariance Gaussian readout). Each
environment holds one posterior draw for a whole episode and acts greedily on it (epsilon
= 0): deep exploration as in randomized value functions (Osband et al.). Training minimises
the expected squared TD error over a fresh weight draw per minibatch by plain SGD: no KL, no
prior term, no weight decay, no gradient clipping, starting from the prior (the
initialisation). A draw's TD target is computed by the target network with the same draw.

The readout's noise (``output_noise``): 'sampled' (default) draws it with the rest, and every
sampled Q-function is regressed on its own target, computed under the same draw: the
minimiser of this same-draw loss carries the target's uncertainty back (where the target is
linear in the draw, Var Q(s, a) = gamma^2 Var Q_target(s', a') exactly), as randomized value
functions do. 'marginalized' averages the readout's noise out of the online Q-value in closed
form, (mean Q - y(z))^2 + Var Q given the earlier layers' draw, which leaves out the
covariance of Q with its own target, -2 gamma Cov(Q(s, a; z), max_a' Q_target(s', a'; z)):
the readout's variance then shrinks along visited features whatever the targets say.

The stable step (``ivi_rl.stability``) scales every learning rate down where a step would
leave SGD's stability bound on the replay minibatch, so no learning rate makes the iteration
diverge; where no bound binds it changes nothing.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import DQN
from stable_baselines3.common.policies import BasePolicy

import ivi_rl
from ivi_rl.checks import check_choice

from .common import EpisodicSampling, check_number
from .policies import IVIDQNPolicy, QNetworkSettings

__all__ = ["IVIDQN"]

OUTPUT_NOISE = ("sampled", "marginalized")
DEFAULT_OUTPUT_NOISE = "sampled"
SCALE_RULES = ("rewards", "returns")
"""The rules ``reward_scale`` accepts by name (:class:`IVIDQN`)."""
STABILITY_EVERY = 100
"""Updates between two measurements of the stable step (at the first, then every 100)."""
STABILITY_RISE = 2.0
"""A scheduled measurement raises the factor to at most this multiple of the factor in force.
One minibatch's curvature can be far below the next one's (tens of times between two
minibatches of 8 on CartPole at a huge learning rate), so the factor follows the lower
measurements at once and climbs back over a few hundred updates."""
STABILITY_GROWTH = 100.0
"""A measurement also comes early, able only to lower the factor, when a minibatch's loss
exceeds this multiple of the reference: the mean loss between the last two scheduled
measurements (during the first window, the mean so far). The curvature may have grown with
the data or the weights since the last measurement, and a step past SGD's bound makes the
loss grow geometrically; the reference does not move with the growing losses, so every update
of a run that goes on growing measures again. TD losses at stable steps rarely jump this far."""
STABILITY_DRAWS = 2
"""Weight draws a measurement averages the curvature over."""


class IVIDQN(EpisodicSampling, DQN):
    """DQN with IVI posterior sampling. Takes DQN's arguments, except the epsilon-greedy ones,
    plus:

    :param output_noise: 'sampled' (default) or 'marginalized' (module docstring).
    :param reward_scale: a factor c > 0 on the rewards in the TD targets (1: none), or a rule
        that sets c from the data and only lowers it: ``'rewards'`` (default), c = 1 / max(1,
        R) with R the largest |reward| seen so far (any environment, from the first step), or
        ``'returns'``, c = 1 / max(1, B) with B the largest |discounted return| of an episode
        seen so far (per environment, at each episode's end; the default until 2026-12-07,
        named ``'auto'`` until then, and a model saved with ``'auto'`` loads with it). Q is
        not rescaled when c falls (the TD targets move Q to the new units). Q is learned in
        units of c times the reward (``'rewards'``) or the return (``'returns'``), so the
        prior's spread of Q (of order 1) is measured against one reward or against the
        values, and the agent does not depend on the units the environment counts rewards in;
        acting (an argmax) and the returns SB3 and the runners report are unchanged. Rewards
        and returns within +-1 keep c = 1 under either rule.
    :param spread_draws: draws used to log the posterior spread of Q every 100 updates (0
        disables it).
    :param max_loss: a training loss above it (default 1e10) or not finite stops learning
        with ``FloatingPointError``; None turns the check off.

    ``policy_kwargs``: see :class:`IVIDQNPolicy`; ``input_bounds`` is saved with the model even
    at its default, and a model saved before it existed loads without it, as it was trained.
    ``predict(obs, deterministic=True)`` acts on the posterior mean, ``False`` on the held
    draw.

    Defaults (``IVIDQN("MlpPolicy", env)``): plain SGD at 0.02 with the parametrization's
    group rates and the stable step, no gradient clipping (``max_grad_norm=inf``), the
    same-draw sampled loss (``output_noise='sampled'``), ``reward_scale='rewards'``,
    :class:`IVIDQNPolicy`'s network; bsuite's training schedule (replay 10,000, learning
    starts 128, batch 128, an update every step) with a soft target network (Polyak averaging
    at ``tau=0.01`` every step). Where they depart from plain IVI: the standard
    parametrization, a zero-mean prior with point-mass biases, one network per action, the
    input's division by the observation's declared bounds and its sqrt(dim) scale, the
    reward scale and the stable step.

    The default step is constant, as bsuite's sweeps need (a run stops when it solves, so its
    budget says nothing about when learning ends). On a fixed budget (classic control),
    ``learning_rate=LinearSchedule(0.02, 0.0, 1.0)`` from ``stable_baselines3.common.utils``
    (in a config: ``learning_rate = "lin_0.02"``) lets the greedy policy settle instead of
    drifting late; RESULTS.md "Classic control" measures it. It is still plain SGD from the
    prior: the linear model's 2-Wasserstein argument holds for any sequence of steps.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": IVIDQNPolicy}
    policy: IVIDQNPolicy

    def __init__(
        self,
        policy: str | type[IVIDQNPolicy],
        env,
        learning_rate=0.02,
        *,
        buffer_size: int = 10_000,
        learning_starts: int = 128,
        batch_size: int = 128,
        train_freq: int | tuple[int, str] = 1,
        tau: float = 0.01,
        target_update_interval: int = 1,
        max_grad_norm: float = math.inf,
        output_noise: str = DEFAULT_OUTPUT_NOISE,
        spread_draws: int = 8,
        reward_scale: float | str = "rewards",
        **kwargs: Any,
    ) -> None:
        check_choice("output_noise", output_noise, OUTPUT_NOISE)
        if not (isinstance(reward_scale, str) and reward_scale in SCALE_RULES):
            reward_scale = check_number(
                "reward_scale", reward_scale, positive=True, also=" or 'rewards' or 'returns'"
            )
        self.reward_scale = reward_scale
        self.value_scale = 1.0 if isinstance(reward_scale, str) else reward_scale
        self.reward_bound = 0.0  # under 'rewards'
        self.return_bound = 0.0  # under 'returns'
        self._episode_return: np.ndarray | None = None  # per env, under 'returns'
        self._episode_discount: np.ndarray | None = None
        self.output_noise, self.spread_draws = output_noise, spread_draws
        # input_bounds is saved with the model even at its default: see _setup_model
        policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
        policy_kwargs.setdefault("input_bounds", QNetworkSettings.input_bounds)
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            train_freq=train_freq,
            tau=tau,
            target_update_interval=target_update_interval,
            max_grad_norm=max_grad_norm,
            policy_kwargs=policy_kwargs,
            **kwargs,
        )

    def _setup_model(self) -> None:
        # A model saved before input_bounds existed (2026-12-07) has no such key in its
        # policy_kwargs and was trained on the undivided observation; a model built since has it.
        self.policy_kwargs.setdefault("input_bounds", False)
        if self.reward_scale == "auto":  # the name 'returns' had until 2026-12-07
            self.reward_scale = "returns"
        super()._setup_model()
        device = self.device
        seed = (
            self.seed
            if self.seed is not None
            else int(np.random.SeedSequence().generate_state(1)[0])
        )
        self.policy.q_net.seed(seed)
        self._train_generator = torch.Generator(device=device).manual_seed(seed + 1)
        # Logged diagnostics draw from their own generator: how often the spread is logged
        # must not change the training noise, and with it the run.
        self._diagnostic_generator = torch.Generator(device=device).manual_seed(seed + 2)
        self._stability_generator = torch.Generator(device=device).manual_seed(seed + 4)
        self._stability = _StableStep()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_stability"]

    def _new_episodes(self, env_indices) -> None:
        if env_indices is None:  # the first episodes act on prior draws
            self.policy.q_net.resample(n_envs=self.n_envs)
        else:
            self.policy.q_net.resample(env_indices=env_indices)

    def _store_transition(self, replay_buffer, buffer_action, new_obs, reward, dones, infos):
        if self.reward_scale == "rewards":
            self._track_rewards(np.asarray(reward, dtype=np.float64))
        elif self.reward_scale == "returns":
            self._track_returns(np.asarray(reward, dtype=np.float64), np.asarray(dones))
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def _track_rewards(self, reward: np.ndarray) -> None:
        """'rewards' scale: raise the reward bound to the largest |reward| of this step and
        set the value scale to 1 / max(1, bound)."""
        largest = float(np.abs(reward).max(initial=0.0))
        if largest > self.reward_bound:
            self.reward_bound = largest
            self._set_value_scale(1.0 / max(1.0, largest))

    def _track_returns(self, reward: np.ndarray, dones: np.ndarray) -> None:
        """'returns' scale: add each env's discounted reward; at an episode's end raise
        the return bound and set the value scale to 1 / max(1, bound)."""
        if self._episode_return is None or len(self._episode_return) != len(reward):
            self._episode_return = np.zeros(len(reward))
            self._episode_discount = np.ones(len(reward))
        self._episode_return += self._episode_discount * reward
        self._episode_discount *= self.gamma
        done = np.flatnonzero(dones)
        if done.size:
            finished = float(np.abs(self._episode_return[done]).max())
            self.return_bound = max(self.return_bound, finished)
            self._episode_return[done], self._episode_discount[done] = 0.0, 1.0
            self._set_value_scale(1.0 / max(1.0, self.return_bound))

    def _set_value_scale(self, scale: float) -> None:
        if scale != self.value_scale:
            self.value_scale = scale
            self.logger.record("train/value_scale", scale)

    def _update_learning_rate(self, optimizers) -> None:
        # SGD groups keep their muP multipliers: lr = schedule x multiplier
        base = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", base)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            ivi_rl.set_base_lr(optimizer, base)

    def _loss(self, data) -> torch.Tensor:
        q_net = self.policy.q_net.q_net
        noise = q_net.sample_noise(generator=self._train_generator)  # a fresh draw per step
        with torch.no_grad():
            target = self._td_target(data, noise)
        return self._td_loss(data, noise, target)

    def _td_target(self, replay_data, noise: ivi_rl.Noise) -> torch.Tensor:
        """r + gamma max_a Q_target(s', a) under the draw ``noise`` (rewards times the value
        scale)."""
        next_q = self._next_q(replay_data.next_observations, noise)
        discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
        rewards = replay_data.rewards
        if self.value_scale != 1.0:
            rewards = rewards * self.value_scale
        return rewards + (1 - replay_data.dones) * discounts * next_q.max(1, keepdim=True)[0]

    def _next_q(self, next_observations, noise: ivi_rl.Noise) -> torch.Tensor:
        """The target network's Q-values [B, A] at the next states: the same draw."""
        return self.policy.q_net_target(next_observations, noise)

    def _td_loss(self, replay_data, noise: ivi_rl.Noise, target: torch.Tensor) -> torch.Tensor:
        q_net, actions = self.policy.q_net, replay_data.actions.long()
        if self.output_noise == "marginalized":
            mean, variance = q_net.output_moments(replay_data.observations, noise)
            current = torch.gather(mean, 1, actions)
            return F.mse_loss(current, target) + torch.gather(variance, 1, actions).mean()
        current = torch.gather(q_net(replay_data.observations, noise), 1, actions)
        return F.mse_loss(current, target)

    def _step_scale(self, data, loss: float) -> float:
        """The stable step (``ivi_rl.stability``): one factor <= 1 on every learning rate
        keeps each layer's Gauss-Newton curvature on the replay minibatch within SGD's
        stability bound, 0.8 (1 - momentum) for a layer with a covariance and 0.8 * 2
        (1 + momentum) for a deterministic one; measured at the first update and then every
        100, raising it at most 2 times at a time, and also, able only to lower it, when the
        loss exceeds 100 times the mean loss between the last two scheduled measurements
        (warm-started power iterations on the minibatch, 2 draws). Exactly 1 where no bound
        binds."""
        return self._stability.scale(self, data, loss)

    def _spread(self, data, gradient_steps: int) -> torch.Tensor | None:
        # spread_draws extra forward passes: at the first update, then every 100 updates
        due = self._n_updates <= gradient_steps or self._n_updates % 100 < gradient_steps
        return self._q_spread(data.observations) if self.spread_draws > 1 and due else None

    def _q_spread(self, observations) -> torch.Tensor:
        """Posterior std of Q over ``spread_draws`` draws on the last minibatch."""
        with torch.no_grad():
            draws = self.policy.q_net.sampled_q(
                observations, (self.spread_draws,), self._diagnostic_generator
            )
        return draws.std(0)


class _StableStep:
    """The stable step's state: the factor in force, the updates since the scheduled
    measurement, the loss reference and the losses since the last scheduled measurement, the
    power iterations' top vectors per action network.

    The schedule (the first update, then every ``STABILITY_EVERY``) sets the factor, at most
    ``STABILITY_RISE`` times the one in force. A loss above ``STABILITY_GROWTH`` times the
    reference measures again and can only lower the factor until the next scheduled
    measurement; it leaves the schedule's random stream and warm-start vectors as they were,
    so where it lowers nothing training is the same, bit for bit, as without it."""

    def __init__(self) -> None:
        self.factor, self.since, self.vectors = 1.0, STABILITY_EVERY, None
        self.loss_sum, self.losses, self.reference = 0.0, 0, None

    def scale(self, model: IVIDQN, data, loss: float) -> float:
        if self.since >= STABILITY_EVERY:
            self._scheduled(self._measure(model, data, keep=True))
            model.logger.record("train/step_scale", self.factor)
        elif loss > STABILITY_GROWTH * self._reference():
            self.factor = min(self.factor, self._measure(model, data, keep=False))
            model.logger.record("train/step_scale", self.factor)
        self.since += 1
        self.loss_sum += loss
        self.losses += 1
        return self.factor

    def _scheduled(self, factor: float) -> None:
        """Set the factor from a scheduled measurement (the first sets it freely: the factor
        starts at 1 and a measurement is at most 1) and start a new loss window."""
        self.factor = min(factor, STABILITY_RISE * self.factor)
        if self.losses:
            self.reference = self.loss_sum / self.losses
        self.since, self.loss_sum, self.losses = 0, 0.0, 0

    def _reference(self) -> float:
        if self.reference is not None:
            return self.reference
        return self.loss_sum / self.losses if self.losses else math.inf

    def _measure(self, model: IVIDQN, data, keep: bool) -> float:
        """The factor on this minibatch; ``keep=False`` restores the random stream and the
        warm-start vectors afterwards."""
        if keep:
            return self._factor(model, data)
        generator = model._stability_generator
        state, vectors = generator.get_state(), self.vectors
        factor = self._factor(model, data)
        generator.set_state(state)
        self.vectors = vectors
        return factor

    def _factor(self, model: IVIDQN, data) -> float:
        q_net = model.policy.q_net
        nets = q_net.q_net.nets if isinstance(q_net.q_net, ivi_rl.SplitMLP) else [q_net.q_net]
        with torch.no_grad():
            features = q_net.features(data.observations)
        actions = data.actions.long().reshape(-1)
        momentum = model.policy.optimizer.param_groups[0].get("momentum", 0.0)
        vectors = list(self.vectors) if self.vectors else [None] * len(nets)
        factor = 1.0
        for i, net in enumerate(nets):
            if len(nets) > 1:  # the action's own network, on the data that took it
                rows, outputs = features[actions == i], torch.zeros_like(actions[actions == i])
            else:
                rows, outputs = features, actions
            if not len(rows):
                continue
            rates = ivi_rl.layer_rates(net, model.policy.optimizer.param_groups)
            noise = net.sample_noise((STABILITY_DRAWS,), model._stability_generator).tensors
            with torch.no_grad():
                kappa, vectors[i] = ivi_rl.layer_curvatures(
                    net, rows, outputs, noise, rates, vectors[i], _iterations(vectors[i])
                )
            stochastic = [layer.is_stochastic for layer in net.layers]
            factor = min(factor, float(ivi_rl.stable_step_scale(kappa, stochastic, momentum)))
        self.vectors = vectors
        return factor


def _iterations(vectors) -> int:
    return ivi_rl.stability.POWER_ITERATIONS if vectors is None else 5
