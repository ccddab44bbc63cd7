"""IVIDQN: DQN with Thompson sampling from an implicitly regularized variational posterior.

The Q-network is an ``ivi_rl`` variational network (by default one MLP per action with a
full-covariance Gaussian readout: :class:`IVIDQNPolicy`). Each environment holds one
posterior draw for a whole episode and acts greedily on it (epsilon = 0): deep exploration as
in randomized value functions (Osband et al.). Training minimises the expected TD loss over a
fresh weight draw per minibatch by plain SGD: no KL, no prior term, no weight decay, no
gradient clipping, starting from the prior (the initialisation).

Target network (``target``): the TD target of a draw is computed by the target network
*with the same draw* ('same_draw', default: every sampled Q-function is regressed on its own
Bellman target, like the heads of Bootstrapped DQN), by the target's posterior mean ('mean'),
or by an independent draw ('independent', NoisyNet's choice).

Output-layer noise (``output_noise``): 'sampled' (default) draws it with the rest;
'marginalized' averages it out exactly: given the earlier layers' draw the expected squared
TD error is (mean Q - target)^2 + Var Q, so the loss's gradient on the output layer's
covariance carries no sampling noise and the variance shrinks where data is at the rate the
objective sets. Both are estimates of the same expected loss when the target does not share
the output layer's noise with Q ('mean', 'independent'; or, under 'same_draw', when Q and its
target use disjoint output weights, as one-hot states do in a network without hidden layers);
otherwise 'marginalized' leaves out the covariance of Q and its own target through that layer.

Draw-coupled TD targets (``target_noise`` = sigma > 0): every stored transition n carries a
code c_n ~ N(0, I / R) (R = the Q-network's noise size; :class:`CodedReplayBuffer`), and the
TD target of draw z becomes r + gamma max Q_target(s', z) + sigma c_n^T z: each draw regresses
on its own noisy copy of the data, so the draws' spread where the data is shrinks with the
number of transitions as under reward noise sigma (about sigma / sqrt(visits) for a one-hot
cell's own weight in the linear-Gaussian case) instead of collapsing at the first fit
(sample-then-optimise; HyperAgent's index-perturbed targets). This
departs from plain IVI, which is sigma = 0 (the default: the agent is then unchanged, bit for
bit). See ``ivi_rl.anchor`` for the linear-Gaussian case.
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
from ivi_rl.contrib.noise_aware import perturbation_shift

from .buffers import CodedReplayBuffer
from .common import EpisodicSampling, check_choice, check_number
from .policies import IVIDQNPolicy

__all__ = ["IVIDQN"]

TARGETS = ("same_draw", "mean", "independent")
LOSSES = ("mse", "huber")
OUTPUT_NOISE = ("sampled", "marginalized")


class IVIDQN(EpisodicSampling, DQN):
    """DQN with IVI posterior sampling. Takes DQN's arguments, except the epsilon-greedy ones,
    plus:

    :param target: how TD targets use the target network: 'same_draw', 'mean', 'independent'.
    :param loss: 'mse' (the expected squared TD error, IVI's objective) or 'huber' (DQN's).
    :param output_noise: 'marginalized' (default: the output layer's noise averaged out in
        closed form; needs ``loss='mse'``) or 'sampled'.
    :param target_noise: sigma >= 0 of the draw-coupled TD-target perturbation (0: none, plain
        IVI); needs ``output_noise='sampled'`` and one-step returns, and stores the codes in a
        :class:`CodedReplayBuffer`.
    :param reward_scale: a factor c > 0 on the rewards in the TD targets (1: none), or
        ``'auto'`` (default, below): Q is learned in units of c times the return, while acting (an
        argmax) and the returns SB3 and the runners report are unchanged. It sets the prior's spread
        against the values (the prior is the initialisation, whose Q is of order 1) and keeps plain
        SGD's stable step size independent of the return's scale (experiments/RESULTS.md,
        "CartPole-v1"). ``'auto'``: c = 1 / max(1, B), B the largest |discounted return| of an
        episode seen so far (per environment, from its first step); c only falls, and Q is not
        rescaled when it does (the TD targets move Q to the new units, and the prior's spread stays
        of order 1 in them). Returns within +-1 keep c = 1: the agent is then the one with
        ``reward_scale=1``.
    :param spread_draws: draws used to log the posterior spread of Q every 100 updates (0
        disables it).

    Policy keyword arguments (``policy_kwargs``) add ``stochastic``, ``cov``, ``rank``,
    ``parametrization`` (see ``ivi_rl.make_mlp``), ``bias_std``, ``input_scale``, ``bias``,
    ``frozen``, ``prior_mean`` and ``per_action`` (see :class:`IVIDQNPolicy`) and accept
    ``optimizer_class`` SGD or Adam.
    ``predict(obs, deterministic=True)`` acts on the posterior mean, ``False`` on the held draw.

    Defaults (``IVIDQN("MlpPolicy", env)``): the agent that explores Deep Sea and learns
    CartPole (experiments/RESULTS.md, "IVIDQN's defaults"): plain SGD at 0.02 with the
    parametrization's group rates, no gradient clipping (``max_grad_norm=inf``), the readout's
    noise marginalized, ``reward_scale='auto'``, and the network of :class:`IVIDQNPolicy`'s
    defaults; bsuite's training schedule (replay 10,000, learning starts 128, batch 128, an
    update every step) with a soft target network (Polyak averaging at ``tau=0.01`` every step).
    Where they depart from plain IVI, each measured in RESULTS: the standard parametrization
    (muP's readout prior leaves Q's prior spread far below a reward of 1), a zero-mean prior,
    one network per action, a sqrt(dim) input scale (right for one-hot or sparse observations;
    for dense inputs of order 1 per coordinate and many dimensions set ``input_scale=1``) and
    the reward scale. ``max_loss`` (default 1e10) stops a run whose loss diverges.
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
        target: str = "same_draw",
        loss: str = "mse",
        output_noise: str = "marginalized",
        spread_draws: int = 8,
        target_noise: float = 0.0,
        reward_scale: float | str = "auto",
        **kwargs: Any,
    ) -> None:
        check_choice("target", target, TARGETS)
        check_choice("loss", loss, LOSSES)
        check_choice("output_noise", output_noise, OUTPUT_NOISE)
        _check_target_noise(target_noise, output_noise, kwargs)
        auto = isinstance(reward_scale, str) and reward_scale == "auto"
        if not auto:
            reward_scale = check_number(
                "reward_scale", reward_scale, positive=True, also=" or 'auto'"
            )
        self.reward_scale = reward_scale
        self.value_scale = 1.0 if auto else reward_scale
        self.return_bound = 0.0
        self._episode_return: np.ndarray | None = None  # per env, under 'auto'
        self._episode_discount: np.ndarray | None = None
        if output_noise == "marginalized" and loss != "mse":
            raise ValueError(
                f"output_noise='marginalized' needs loss='mse' (the closed form is that of the "
                f"squared error); got loss={loss!r}"
            )
        self.target_mode, self.loss_kind, self.spread_draws = target, loss, spread_draws
        self.output_noise, self.target_noise = output_noise, float(target_noise)
        if self.target_noise:
            kwargs["replay_buffer_class"] = CodedReplayBuffer
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
            **kwargs,
        )

    def _setup_model(self) -> None:
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
        if self.target_noise:
            self.replay_buffer.set_codes(self.policy.q_net.q_net.noise_dim, seed + 3)

    def load_replay_buffer(self, path, truncate_last_traj: bool = True) -> None:
        """SB3's, plus a check that the buffer carries codes of this Q-network's noise size
        when ``target_noise`` > 0."""
        super().load_replay_buffer(path, truncate_last_traj)
        if not self.target_noise:
            return
        buffer, want = self.replay_buffer, self.policy.q_net.q_net.noise_dim
        found = getattr(buffer, "code_dim", None) if isinstance(buffer, CodedReplayBuffer) else None
        if found != want:
            raise ValueError(
                f"load_replay_buffer: {path} holds no perturbation codes of size {want} "
                f"(found {found}); target_noise={self.target_noise:g} needs the "
                "CodedReplayBuffer this model saved"
            )

    def _new_episodes(self, env_indices) -> None:
        if env_indices is None:  # the first episodes act on prior draws
            self.policy.q_net.resample(n_envs=self.n_envs)
        else:
            self.policy.q_net.resample(env_indices=env_indices)

    def _store_transition(self, replay_buffer, buffer_action, new_obs, reward, dones, infos):
        if self.reward_scale == "auto":
            self._track_returns(np.asarray(reward, dtype=np.float64), np.asarray(dones))
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def _track_returns(self, reward: np.ndarray, dones: np.ndarray) -> None:
        """'auto' reward scale: add each env's discounted reward; at an episode's end raise
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
            self.value_scale = 1.0 / max(1.0, self.return_bound)
            self.logger.record("train/value_scale", self.value_scale)

    def _update_learning_rate(self, optimizers) -> None:
        # SGD/Adam groups keep their muP multipliers: lr = schedule x multiplier
        base = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", base)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            ivi_rl.set_base_lr(optimizer, base)

    def _td_target(self, replay_data, noise: ivi_rl.Noise) -> torch.Tensor:
        target_net = self.policy.q_net_target
        next_obs = replay_data.next_observations
        if self.target_mode == "same_draw":
            next_q = target_net(next_obs, noise)
        elif self.target_mode == "mean":
            next_q = target_net.mean_q(next_obs)
        else:
            next_q = target_net(next_obs, generator=self._train_generator)
        discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
        rewards = replay_data.rewards
        if self.value_scale != 1.0:
            rewards = rewards * self.value_scale
        target = rewards + (1 - replay_data.dones) * discounts * next_q.max(1, keepdim=True)[0]
        if self.target_noise:
            shift = perturbation_shift(noise, replay_data.codes)
            target = target + self.target_noise * shift[:, None]
        return target

    def _loss(self, data) -> torch.Tensor:
        q_net = self.policy.q_net.q_net
        noise = q_net.sample_noise(generator=self._train_generator)  # a fresh draw per step
        with torch.no_grad():
            target = self._td_target(data, noise)
        return self._td_loss(data, noise, target)

    def _spread(self, data, gradient_steps: int) -> torch.Tensor | None:
        # spread_draws extra forward passes: at the first update, then every 100 updates
        due = self._n_updates <= gradient_steps or self._n_updates % 100 < gradient_steps
        return self._q_spread(data.observations) if self.spread_draws > 1 and due else None

    def _td_loss(self, replay_data, noise: ivi_rl.Noise, target: torch.Tensor) -> torch.Tensor:
        q_net, actions = self.policy.q_net, replay_data.actions.long()
        if self.output_noise == "marginalized":
            mean, variance = q_net.output_moments(replay_data.observations, noise)
            current = torch.gather(mean, 1, actions)
            return F.mse_loss(current, target) + torch.gather(variance, 1, actions).mean()
        current = torch.gather(q_net(replay_data.observations, noise), 1, actions)
        if self.loss_kind == "mse":
            return F.mse_loss(current, target)
        return F.smooth_l1_loss(current, target)

    def _q_spread(self, observations) -> torch.Tensor:
        """Posterior std of Q over ``spread_draws`` draws on the last minibatch."""
        with torch.no_grad():
            draws = self.policy.q_net.sampled_q(
                observations, (self.spread_draws,), self._diagnostic_generator
            )
        return draws.std(0)


def _check_target_noise(target_noise: object, output_noise: str, kwargs: dict) -> None:
    """``target_noise`` is a finite number >= 0, and a positive one has what it needs."""
    check_number("target_noise", target_noise, positive=False)
    if not target_noise:
        return
    if output_noise != "sampled":
        raise ValueError(
            f"target_noise={target_noise!r} needs output_noise='sampled' (the closed form of "
            f"'marginalized' does not include the target's share of the output noise); got "
            f"output_noise={output_noise!r}"
        )
    if kwargs.get("n_steps", 1) != 1:
        raise ValueError(
            f"target_noise={target_noise!r} needs one-step returns; got "
            f"n_steps={kwargs['n_steps']!r}"
        )
    if kwargs.get("replay_buffer_class") not in (None, CodedReplayBuffer):
        raise ValueError(
            f"target_noise={target_noise!r} stores codes in a CodedReplayBuffer; got "
            f"replay_buffer_class={kwargs['replay_buffer_class'].__name__}"
        )
