"""BootRMS: q networks, each trained on its own bootstrap of the data (every observation enters
network j's data with probability p); one network, chosen uniformly, acts at each decision.
Riquelme et al. 2018 (q = 3, p = 0.95)."""

from __future__ import annotations

import dataclasses

import torch

from .base import BanditAgent
from .models import StackedMLP
from .rms import RMSSettings, RMSTrainer, masked_mse
from .streams import TrialStreams

__all__ = ["BootRMS", "BootRMSSettings"]


@dataclasses.dataclass(frozen=True)
class BootRMSSettings(RMSSettings):
    num_models: int = 3
    """q: networks per trial."""
    bootstrap_prob: float = 0.95
    """p: probability that an observation enters a network's data."""


class BootRMS(BanditAgent):
    name = "boot_rms"
    settings_class = BootRMSSettings
    is_posterior = True

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        q, p = self.settings.num_models, self.settings.bootstrap_prob
        if q < 1 or not 0 < p <= 1:
            raise ValueError(
                f"agent 'boot_rms': num_models={q} must be >= 1, bootstrap_prob={p} in (0, 1]"
            )
        # one generator per (trial, network), derived from the trial's init stream
        init = TrialStreams(self.seeds, "init", self.device).generators
        heads = [
            torch.Generator(device=self.device).manual_seed(
                int(torch.randint(2**62, (1,), generator=g, device=self.device))
            )
            for g in init
            for _ in range(q)
        ]
        self.net = StackedMLP(
            heads, context_dim, num_actions, self.settings.hidden, self.device, self.dtype
        )
        self.trainer = RMSTrainer(self.net.parameters(), self.settings)
        self.data_streams = TrialStreams(self.seeds, "data", self.device)
        self.in_bootstrap = torch.zeros(
            self.num_trials, q, horizon, device=self.device, dtype=torch.bool
        )

    def _observe(self, contexts, actions, rewards) -> None:
        u = self.data_streams.uniform(self.settings.num_models, dtype=torch.float64)
        self.in_bootstrap[:, :, self.t - 1] = u < self.settings.bootstrap_prob

    def _values(self, contexts: torch.Tensor) -> torch.Tensor:
        """[S, q, k]: every network's values at each trial's context."""
        q = self.settings.num_models
        x = contexts.repeat_interleave(q, dim=0)[:, None, :]
        with torch.no_grad():
            return self.net(x)[:, 0].view(self.num_trials, q, self.num_actions)

    def posterior_values(self, contexts, num_samples, streams) -> torch.Tensor:
        return self._values(contexts).transpose(0, 1)  # the q networks are the posterior

    def _act(self, contexts: torch.Tensor) -> torch.Tensor:
        q = self.settings.num_models
        head = (self.act_streams.uniform(dtype=torch.float64) * q).long().clamp_max(q - 1)
        values = self._values(contexts)[torch.arange(self.num_trials, device=self.device), head]
        return values.argmax(-1)

    def _bootstrap_indices(self) -> torch.Tensor:
        """[S * q, B] indices drawn uniformly from each network's own data."""
        s, q, b = self.num_trials, self.settings.num_models, self.settings.batch_size
        member = self.in_bootstrap[:, :, : self.t].to(torch.float64)
        cum = member.cumsum(-1)  # [S, q, t]
        count = cum[..., -1:].clamp_min(1.0)
        u = self.train_streams.uniform(q, b, dtype=torch.float64)
        target = (u * count).floor() + 1  # the target-th member (1-based)
        idx = torch.searchsorted(cum.contiguous(), target.contiguous()).clamp_max(self.t - 1)
        return idx.view(s * q, b)

    def _train(self) -> torch.Tensor:
        q = self.settings.num_models

        def loss(step: int) -> torch.Tensor:
            idx = self._bootstrap_indices().view(self.num_trials, -1)
            ctx, actions, rewards = self.buffer.gather(idx)
            rewards = self.training_targets(rewards)
            b = self.settings.batch_size
            ctx = ctx.view(self.num_trials * q, b, -1)
            return masked_mse(self.net(ctx), actions.view(-1, b), rewards.view(-1, b))

        return (
            self.trainer.retrain(self.settings.train_steps, loss).view(self.num_trials, q).mean(1)
        )
