"""Bootstrapped DQN with randomized prior functions (Osband et al. 2016; 2018) on SB3.

K ensemble members, each Q_k = f_k + prior_scale * p_k with a trainable MLP f_k and a fixed,
randomly initialised MLP p_k (stop-gradient). One member acts per episode (per env), chosen
uniformly at random when an episode starts; every member is trained on every transition
with its own target member (bsuite's JAX ``boot_dqn``: K = 20, MLP [50, 50], prior scale 5,
mask probability 1, Adam 1e-3, batch 128, target update every 4 steps, epsilon 0).
``predict(obs, deterministic=True)`` acts on the ensemble mean.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import DQN
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from .common import EpisodicSampling

__all__ = ["BootstrappedDQN", "EnsembleQNetwork"]


class EnsembleMLP(nn.Module):
    """K independent ReLU MLPs with stacked parameters: [B, in] -> [K, B, out]."""

    def __init__(self, k: int, in_features: int, out_features: int, hidden: list[int]) -> None:
        super().__init__()
        widths = [in_features, *hidden, out_features]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, o in itertools.pairwise(widths):
            bound = 1.0 / math.sqrt(i)  # PyTorch's nn.Linear default
            self.weights.append(nn.Parameter(torch.empty(k, i, o).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(k, 1, o).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.weights[0].shape[0], -1, -1)
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if layer < len(self.weights) - 1:
                h = torch.relu(h)
        return h


class EnsembleQNetwork(QNetwork):
    def __init__(
        self,
        observation_space,
        action_space,
        features_extractor,
        features_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        num_heads: int = 20,
        prior_scale: float = 5.0,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor,
            features_dim,
            net_arch,
            activation_fn,
            normalize_images,
        )
        n = int(action_space.n)
        self.num_heads, self.prior_scale = num_heads, prior_scale
        self.q_net = EnsembleMLP(num_heads, features_dim, n, self.net_arch)
        self.prior = EnsembleMLP(num_heads, features_dim, n, self.net_arch).requires_grad_(False)
        self.active = torch.zeros(1, dtype=torch.long)
        self.rng = np.random.default_rng()

    def all_q(self, obs) -> torch.Tensor:
        """Q-values of every member: [K, B, A]."""
        x = self.extract_features(obs, self.features_extractor)
        return self.q_net(x) + self.prior_scale * self.prior(x)

    def forward(self, obs) -> torch.Tensor:
        return self.all_q(obs).mean(0)

    def choose_heads(self, env_indices=None, n_envs: int | None = None) -> None:
        if n_envs is not None:
            self.active = torch.as_tensor(self.rng.integers(self.num_heads, size=n_envs))
        else:
            for i in env_indices:
                self.active[i] = int(self.rng.integers(self.num_heads))

    def _predict(self, observation, deterministic: bool = True) -> torch.Tensor:
        q = self.all_q(observation)
        if deterministic:
            return q.mean(0).argmax(1)
        if self.active.numel() != q.shape[1]:
            self.choose_heads(n_envs=q.shape[1])
        rows = torch.arange(q.shape[1])
        return q[self.active.to(q.device), rows].argmax(1)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {
            **super()._get_constructor_parameters(),
            "num_heads": self.num_heads,
            "prior_scale": self.prior_scale,
        }


class BootstrappedDQNPolicy(DQNPolicy):
    def __init__(self, *args, num_heads: int = 20, prior_scale: float = 5.0, **kwargs) -> None:
        self.ensemble_kwargs = {"num_heads": num_heads, "prior_scale": prior_scale}
        kwargs.setdefault("net_arch", [50, 50])
        super().__init__(*args, **kwargs)

    def make_q_net(self) -> EnsembleQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return EnsembleQNetwork(**net_args, **self.ensemble_kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), **self.ensemble_kwargs}


class BootstrappedDQN(EpisodicSampling, DQN):
    """Bootstrapped DQN with randomized prior functions; DQN's arguments without epsilon.
    ``policy_kwargs`` add ``num_heads`` (K) and ``prior_scale``."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": BootstrappedDQNPolicy}

    def __init__(self, policy, env, learning_rate=1e-3, **kwargs: Any) -> None:
        defaults = dict(
            batch_size=128,
            buffer_size=10_000,
            learning_starts=128,
            target_update_interval=4,
            train_freq=1,
        )
        super().__init__(policy, env, learning_rate, **{**defaults, **kwargs})

    def _setup_model(self) -> None:
        super()._setup_model()
        self.policy.q_net.rng = np.random.default_rng(self.seed)

    def _new_episodes(self, env_indices) -> None:
        if env_indices is None:
            self.policy.q_net.choose_heads(n_envs=self.n_envs)
        else:
            self.policy.q_net.choose_heads(env_indices=env_indices)

    def _loss(self, data) -> torch.Tensor:
        discounts = data.discounts if data.discounts is not None else self.gamma
        with torch.no_grad():
            next_q = self.policy.q_net_target.all_q(data.next_observations).max(-1)[0]  # [K, B]
            target = data.rewards.T + (1 - data.dones.T) * discounts * next_q
        q = self.policy.q_net.all_q(data.observations)
        current = torch.gather(q, 2, data.actions.long().T[..., None].expand(q.shape[0], -1, 1))
        self._last_q = q.detach()
        return F.mse_loss(current[..., 0], target)  # each member regresses on its own target

    def _spread(self, data, gradient_steps: int) -> torch.Tensor | None:
        return self._last_q.std(0)  # spread of Q across the members, last minibatch
