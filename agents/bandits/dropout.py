"""Dropout-TS: MC dropout as an approximate posterior (Gal & Ghahramani); one dropout mask
per decision, fresh masks at every training step. Riquelme et al. 2018 ('Dropout')."""

from __future__ import annotations

import dataclasses

import torch

from .rms import RMSNetworkAgent, RMSSettings, masked_mse

__all__ = ["DropoutSettings", "DropoutTS"]


@dataclasses.dataclass(frozen=True)
class DropoutSettings(RMSSettings):
    keep_prob: float = 0.8
    """Probability of keeping a hidden unit (the Showdown's default)."""


class DropoutTS(RMSNetworkAgent):
    name = "dropout"
    settings_class = DropoutSettings
    is_posterior = True

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        if not 0 < self.settings.keep_prob <= 1:
            raise ValueError(
                f"agent 'dropout': keep_prob={self.settings.keep_prob} must be in (0, 1]"
            )

    def _masks(self, streams, batch: int, draws: int = 1) -> list[torch.Tensor]:
        keep = self.settings.keep_prob
        return [
            (streams.uniform(draws * batch, h, dtype=self.dtype) < keep).to(self.dtype) / keep
            for h in self.settings.hidden
        ]

    def posterior_values(self, contexts, num_samples, streams) -> torch.Tensor:
        masks = self._masks(streams, 1, num_samples)  # each [S, K, h]
        x = contexts[:, None, :].expand(-1, num_samples, -1)
        with torch.no_grad():
            return self.net(x, masks).transpose(0, 1)

    def _act(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.posterior_values(contexts, 1, self.act_streams)[0].argmax(-1)

    def _minibatch_loss(self, ctx, actions, rewards) -> torch.Tensor:
        masks = self._masks(self.train_streams, self.settings.batch_size)  # fresh every step
        return masked_mse(self.net(ctx, masks), actions, rewards)
