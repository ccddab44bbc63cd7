"""NeuralLinear: a network's last hidden layer as features, with an exact Bayesian linear
regression per arm on them (Normal-Inverse-Gamma, no intercept), updated every step and
rebuilt on all data after each retrain; Thompson sampling on the last layer only.
Riquelme et al. 2018."""

from __future__ import annotations

import dataclasses

import torch

from .base import BanditAgent
from .linear_posterior import LinearPosterior
from .models import StackedMLP
from .rms import RMSSettings, RMSTrainer, masked_mse
from .streams import TrialStreams

__all__ = ["NeuralLinear", "NeuralLinearSettings"]


@dataclasses.dataclass(frozen=True)
class NeuralLinearSettings(RMSSettings):
    a0: float = 6.0
    b0: float = 6.0
    lambda_prior: float = 0.25


class NeuralLinear(BanditAgent):
    name = "neural_linear"
    settings_class = NeuralLinearSettings
    is_posterior = True

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        s = self.settings
        init = TrialStreams(self.seeds, "init", self.device).generators
        self.net = StackedMLP(init, context_dim, num_actions, s.hidden, self.device, self.dtype)
        self.trainer = RMSTrainer(self.net.parameters(), s)
        self.posterior = LinearPosterior(
            self.num_trials,
            num_actions,
            s.hidden[-1],
            a0=s.a0,
            b0=s.b0,
            lambda_prior=s.lambda_prior,
            intercept=False,
            device=self.device,
        )

    def _features(self, contexts: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.net.features(contexts)

    def _observe(self, contexts, actions, rewards) -> None:
        self.posterior.update(self._features(contexts[:, None, :])[:, 0], actions, rewards)

    def posterior_values(self, contexts, num_samples, streams) -> torch.Tensor:
        z = self._features(contexts[:, None, :])[:, 0]
        return self.posterior.values(z, self.posterior.sample(streams, num_samples))

    def _act(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.posterior_values(contexts, 1, self.act_streams)[0].argmax(-1)

    def _train(self) -> torch.Tensor:
        def loss(step: int) -> torch.Tensor:
            idx = self.buffer.sample_indices(self.train_streams, self.settings.batch_size)
            ctx, actions, rewards = self.buffer.gather(idx)
            return masked_mse(self.net(ctx), actions, rewards)

        mean_loss = self.trainer.retrain(self.settings.train_steps, loss)
        n = self.t
        buf = self.buffer
        self.posterior.rebuild(
            self._features(buf.contexts[:, :n]), buf.actions[:, :n], buf.rewards[:, :n]
        )
        return mean_loss
