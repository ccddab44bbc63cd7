"""NoisyNet DQN (Fortunato et al., ICLR 2018) on SB3: factorised Gaussian noise on every layer
of the Q-network, w = mu + sigma * (f(eps_out) f(eps_in)^T), f(x) = sign(x) sqrt(|x|), sigma
initialised to sigma0 / sqrt(fan_in) with sigma0 = 0.5. Noise is redrawn at every environment
step and every gradient step (the target network's independently); epsilon is 0.
``predict(obs, deterministic=True)`` uses the mean weights."""

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

from .common import NoEpsilon

__all__ = ["NoisyDQN", "NoisyLinear"]


class NoisyLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(
            torch.empty(out_features, in_features).uniform_(-bound, bound)
        )
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.noisy = True
        """Explicit switch (never ``self.training``: SB3 acts in eval mode)."""

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        def f(n: int) -> torch.Tensor:
            x = torch.randn(n, generator=generator, device=self.eps_in.device)
            return x.sign() * x.abs().sqrt()

        self.eps_in.copy_(f(self.eps_in.numel()))
        self.eps_out.copy_(f(self.eps_out.numel()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.noisy:
            return F.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        return F.linear(x, weight, self.bias_mu + self.bias_sigma * self.eps_out)


class NoisyQNetwork(QNetwork):
    def __init__(
        self,
        observation_space,
        action_space,
        features_extractor,
        features_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        sigma0: float = 0.5,
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
        widths = [features_dim, *self.net_arch, int(action_space.n)]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(NoisyLinear(a, b, sigma0))
            if i < len(widths) - 2:
                layers.append(activation_fn())
        self.q_net = nn.Sequential(*layers)
        self.sigma0 = sigma0
        self.generator: torch.Generator | None = None

    def noisy_layers(self) -> list[NoisyLinear]:
        return [m for m in self.q_net if isinstance(m, NoisyLinear)]

    def reset_noise(self) -> None:
        for layer in self.noisy_layers():
            layer.reset_noise(self.generator)

    def set_noisy(self, on: bool) -> None:
        for layer in self.noisy_layers():
            layer.noisy = on

    def _predict(self, observation, deterministic: bool = True) -> torch.Tensor:
        self.set_noisy(not deterministic)
        if not deterministic:
            self.reset_noise()  # a new network at every step
        q = self(observation)
        self.set_noisy(True)
        return q.argmax(dim=1).reshape(-1)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "sigma0": self.sigma0}


class NoisyDQNPolicy(DQNPolicy):
    def __init__(self, *args, sigma0: float = 0.5, **kwargs) -> None:
        self.sigma0 = sigma0
        super().__init__(*args, **kwargs)

    def make_q_net(self) -> NoisyQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return NoisyQNetwork(**net_args, sigma0=self.sigma0).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "sigma0": self.sigma0}


class NoisyDQN(NoEpsilon, DQN):
    """DQN with NoisyNet exploration; DQN's arguments without epsilon. ``policy_kwargs`` add
    ``sigma0``."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": NoisyDQNPolicy}

    def __init__(self, policy, env, learning_rate=1e-3, **kwargs: Any) -> None:
        super().__init__(policy, env, learning_rate, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        generator = torch.Generator(device=self.device)
        generator.manual_seed(
            self.seed
            if self.seed is not None
            else int(np.random.SeedSequence().generate_state(1)[0])
        )
        self.policy.q_net.generator = self.policy.q_net_target.generator = generator

    def _loss(self, data) -> torch.Tensor:
        self.policy.q_net.reset_noise()
        self.policy.q_net_target.reset_noise()  # independent target noise
        discounts = data.discounts if data.discounts is not None else self.gamma
        with torch.no_grad():
            next_q = self.policy.q_net_target(data.next_observations).max(1, keepdim=True)[0]
            target = data.rewards + (1 - data.dones) * discounts * next_q
        current = torch.gather(self.policy.q_net(data.observations), 1, data.actions.long())
        return F.smooth_l1_loss(current, target)

    def _spread(self, data, gradient_steps: int) -> torch.Tensor | None:
        layers = self.policy.q_net.noisy_layers()  # NoisyNet's posterior spread: its sigmas
        return torch.cat([layer.weight_sigma.detach().abs().flatten() for layer in layers])
