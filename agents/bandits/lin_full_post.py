"""LinFullPost: exact per-arm Bayesian linear regression (Normal-Inverse-Gamma prior, with an
intercept), Thompson sampling of (sigma^2, beta) at every decision. Riquelme et al. 2018."""

from __future__ import annotations

import dataclasses

import torch

from .base import BanditAgent, Settings
from .linear_posterior import LinearPosterior

__all__ = ["LinFullPost", "LinFullPostSettings"]


@dataclasses.dataclass(frozen=True)
class LinFullPostSettings(Settings):
    a0: float = 6.0
    """Inverse-gamma shape of the noise-variance prior (Showdown code default)."""
    b0: float = 6.0
    """Inverse-gamma scale of the noise-variance prior."""
    lambda_prior: float = 0.25
    """Prior precision of beta, in units of 1 / sigma^2."""


class LinFullPost(BanditAgent):
    name = "lin_full_post"
    settings_class = LinFullPostSettings
    is_posterior = True

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        s = self.settings
        self.posterior = LinearPosterior(
            self.num_trials,
            num_actions,
            context_dim,
            a0=s.a0,
            b0=s.b0,
            lambda_prior=s.lambda_prior,
            intercept=True,
            device=self.device,
        )

    def _observe(self, contexts, actions, rewards) -> None:
        self.posterior.update(contexts, actions, rewards)

    def posterior_values(self, contexts, num_samples, streams) -> torch.Tensor:
        return self.posterior.values(contexts, self.posterior.sample(streams, num_samples))

    def _act(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.posterior_values(contexts, 1, self.act_streams)[0].argmax(-1)
