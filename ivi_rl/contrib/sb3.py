"""IVIDQN variants measured in experiments/RESULTS.md and not adopted, in one class.

:class:`VariantIVIDQN` (``ivi_dqn_variant`` in configs) is IVIDQN plus:

- ``target``: the network that computes a draw's TD target: 'same_draw' (IVIDQN's), the
  target network's posterior mean ('mean') or an independent draw ('independent', NoisyNet's);
- ``loss``: 'mse' (IVI's expected squared error) or 'huber' (DQN's; needs
  ``output_noise='sampled'``);
- ``target_noise`` = sigma > 0: draw-coupled TD targets: every stored transition n carries a
  code c_n ~ N(0, I / R) (:class:`~ivi_rl.contrib.coded_buffer.CodedReplayBuffer`) and the
  TD target of draw z becomes r + gamma max Q_target(s', z) + sigma c_n^T z, so each draw
  regresses on its own noisy copy of the data (HyperAgent's index-perturbed targets;
  :mod:`ivi_rl.contrib.noise_aware` for the linear-Gaussian case); it slowed Deep Sea;

- ``stable_lr=False``: no stable step (IVIDQN's learning rates are never capped);

and its policy (:class:`VariantIVIDQNPolicy`) plus ``prior_mean='random'`` (the stochastic
layers' means start at the parametrization's random init, a mean function every draw
shares), ``frozen`` (layers kept at their prior draw: 'none', 'output', 'hidden_output',
'features') and ``optimizer_class=torch.optim.Adam`` (which does not keep IVI's implicit
bias). With none of these set it is IVIDQN, bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from stable_baselines3.common.policies import BasePolicy
from torch import nn

import ivi_rl
from ivi_rl.agents.sb3.common import check_number
from ivi_rl.agents.sb3.ivi_dqn import DEFAULT_OUTPUT_NOISE, IVIDQN
from ivi_rl.agents.sb3.policies import IVIDQNPolicy, PosteriorQNetwork, QNetworkSettings
from ivi_rl.checks import check_choice

from .coded_buffer import CodedReplayBuffer
from .noise_aware import perturbation_shift

__all__ = ["RL_VARIANTS", "VariantIVIDQN", "VariantIVIDQNPolicy", "VariantQNetworkSettings"]

TARGETS = ("same_draw", "mean", "independent")
LOSSES = ("mse", "huber")
FROZEN = ("none", "output", "hidden_output", "features")
PRIOR_MEANS = ("zero", "random")


@dataclasses.dataclass(frozen=True)
class VariantQNetworkSettings(QNetworkSettings):
    """IVIDQNPolicy's settings plus ``prior_mean`` and ``frozen`` (module docstring)."""

    prior_mean: str = "zero"
    frozen: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("prior_mean", self.prior_mean, PRIOR_MEANS)
        check_choice("frozen", self.frozen, FROZEN)


class VariantQNetwork(PosteriorQNetwork):
    """The Q-network with ``prior_mean`` and ``frozen``."""

    def _make_net(self, features_dim: int, n_out: int, activation_fn: type[nn.Module]):
        net = super()._make_net(features_dim, n_out, activation_fn)
        # frozen layers keep their prior draw (mean and covariance)
        for i in _frozen_layers(self.settings.frozen, len(net.layers), self.net_arch):
            net.layers[i].requires_grad_(False)
        return net

    def _set_prior_means(self, net: ivi_rl.VariationalMLP) -> None:
        if self.settings.prior_mean == "zero":
            if not net.stochastic_layers:
                raise ValueError(
                    f"prior_mean='zero' needs stochastic layers, but "
                    f"stochastic={self.settings.stochastic!r} builds none; use "
                    "prior_mean='random' for a deterministic network"
                )
            super()._set_prior_means(net)


def _frozen_layers(frozen: str, n_layers: int, net_arch: list[int]) -> range:
    """Indices of the layers that keep their prior draw."""
    if frozen == "none":
        return range(0)
    if n_layers < 2:
        raise ValueError(
            f"frozen={frozen!r} needs hidden layers, but net_arch={net_arch!r} has none"
        )
    if frozen == "features":
        return range(n_layers - 1)
    return range(n_layers - 1 if frozen == "output" else 1, n_layers)


class VariantIVIDQNPolicy(IVIDQNPolicy):
    """:class:`~ivi_rl.agents.sb3.policies.IVIDQNPolicy` plus ``prior_mean``, ``frozen`` and
    Adam (module docstring)."""

    accepted_optimizers = (torch.optim.SGD, torch.optim.Adam)
    q_network_class = VariantQNetwork
    settings_class = VariantQNetworkSettings


class VariantIVIDQN(IVIDQN):
    """IVIDQN plus ``target``, ``loss``, ``target_noise`` and ``stable_lr`` (module
    docstring)."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": VariantIVIDQNPolicy}

    def __init__(
        self,
        policy,
        env,
        learning_rate=0.02,
        *,
        target: str = "same_draw",
        loss: str = "mse",
        target_noise: float = 0.0,
        stable_lr: bool = True,
        **kwargs: Any,
    ) -> None:
        if not isinstance(stable_lr, bool):
            raise ValueError(f"stable_lr={stable_lr!r} is not accepted; accepted: True, False")
        self.stable_lr = stable_lr
        check_choice("target", target, TARGETS)
        check_choice("loss", loss, LOSSES)
        output_noise = kwargs.get("output_noise", DEFAULT_OUTPUT_NOISE)
        if output_noise == "marginalized" and loss != "mse":
            raise ValueError(
                f"output_noise='marginalized' needs loss='mse' (the closed form is that of the "
                f"squared error); got loss={loss!r}"
            )
        _check_target_noise(target_noise, output_noise, kwargs)
        self.target_mode, self.loss_kind, self.target_noise = target, loss, float(target_noise)
        if self.target_noise:
            kwargs["replay_buffer_class"] = CodedReplayBuffer
        super().__init__(policy, env, learning_rate, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.target_noise:
            seed = self.policy.q_net.generator.initial_seed()
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

    def _step_scale(self, data, loss: float) -> float:
        return super()._step_scale(data, loss) if self.stable_lr else 1.0

    def _next_q(self, next_observations, noise: ivi_rl.Noise) -> torch.Tensor:
        target_net = self.policy.q_net_target
        if self.target_mode == "same_draw":
            return target_net(next_observations, noise)
        if self.target_mode == "mean":
            return target_net.mean_q(next_observations)
        return target_net(next_observations, generator=self._train_generator)

    def _td_target(self, replay_data, noise: ivi_rl.Noise) -> torch.Tensor:
        target = super()._td_target(replay_data, noise)
        if self.target_noise:
            shift = perturbation_shift(noise, replay_data.codes)
            target = target + self.target_noise * shift[:, None]
        return target

    def _td_loss(self, replay_data, noise: ivi_rl.Noise, target: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "mse":
            return super()._td_loss(replay_data, noise, target)
        current = torch.gather(self.policy.q_net(replay_data.observations, noise), 1,
                               replay_data.actions.long())  # fmt: skip
        return F.smooth_l1_loss(current, target)


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


RL_VARIANTS = {"ivi_dqn_variant": VariantIVIDQN}
"""The RL variants by config name (``ivi_rl.pipeline.rl_config`` finds them)."""
