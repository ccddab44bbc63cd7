"""NeuralLinear: a network's last hidden layer as features, with an exact Bayesian linear
regression per arm on them (Normal-Inverse-Gamma, no intercept), updated every step and
rebuilt on all data after each retrain; Thompson sampling on the last layer only.
Riquelme et al. 2018."""

from __future__ import annotations

import dataclasses

import torch

from .linear_posterior import LinearPosterior
from .rms import RMSNetworkAgent, RMSSettings

__all__ = ["NeuralLinear", "NeuralLinearSettings"]


@dataclasses.dataclass(frozen=True)
class NeuralLinearSettings(RMSSettings):
    a0: float = 6.0
    b0: float = 6.0
    lambda_prior: float = 0.25


class NeuralLinear(RMSNetworkAgent):
    name = "neural_linear"
    settings_class = NeuralLinearSettings
    is_posterior = True

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        s = self.settings
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
        targets = self.training_targets(rewards)
        self.posterior.update(self._features(contexts[:, None, :])[:, 0], actions, targets)

    def posterior_values(self, contexts, num_samples, streams) -> torch.Tensor:
        z = self._features(contexts[:, None, :])[:, 0]
        return self.posterior.values(z, self.posterior.sample(streams, num_samples))

    def _act(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.posterior_values(contexts, 1, self.act_streams)[0].argmax(-1)

    def _train(self) -> torch.Tensor:
        mean_loss = super()._train()
        n, buf = self.t, self.buffer  # new features: rebuild the last-layer posterior on all data
        self.posterior.rebuild(
            self._features(buf.contexts[:, :n]),
            buf.actions[:, :n],
            self.training_targets(buf.rewards[:, :n]),
        )
        return mean_loss
