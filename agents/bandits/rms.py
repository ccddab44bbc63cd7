"""The Showdown's optimiser for its neural baselines: RMSProp with inverse-time learning-rate
decay lr / (1 + decay * step), restarted at every retrain (``reset_lr=True``), and gradient
clipping at norm 5 (per model, so batched trials stay independent)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from .base import BanditAgent, NeuralSettings
from .models import StackedMLP, clip_grad_norm_per_model
from .streams import TrialStreams

__all__ = ["RMSNetworkAgent", "RMSSettings", "RMSTrainer", "masked_mse"]


@dataclasses.dataclass(frozen=True)
class RMSSettings(NeuralSettings):
    lr: float = 0.01
    """Initial RMSProp learning rate of every retrain. The Showdown code's 0.1 belongs to its
    one-layer network of 50 units; on the 100 x 100 network it kills the ReLU features
    (experiments/RESULTS.md, "What the variants did"); 0.01 is the 100 x 100 reproductions'."""
    lr_decay: float = 0.5
    """Inverse-time decay rate: lr / (1 + lr_decay * step)."""
    max_grad_norm: float = 5.0
    """Gradient-norm clip per model."""
    reward_scaling: Literal["none", "standardize"] = "standardize"
    """'standardize': train on (r - mean) / std of all rewards so far (as IVI-TS does; the
    argmax is unchanged). 'none': raw rewards, the Showdown code's choice."""


class RMSTrainer:
    def __init__(self, params: Sequence[Tensor], settings: RMSSettings) -> None:
        self.params, self.settings = list(params), settings
        # TF1's RMSPropOptimizer defaults: decay 0.9, epsilon 1e-10
        self.opt = torch.optim.RMSprop(self.params, lr=settings.lr, alpha=0.9, eps=1e-10)

    def retrain(self, steps: int, losses: Callable[[int], Tensor]) -> Tensor:
        """Run ``steps`` updates of ``losses(step) -> [M]``; returns the mean loss per model."""
        total = None
        for step in range(steps):
            for group in self.opt.param_groups:
                group["lr"] = self.settings.lr / (1 + self.settings.lr_decay * step)
            loss = losses(step)
            self.opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            clip_grad_norm_per_model(self.params, self.settings.max_grad_norm)
            self.opt.step()
            total = loss.detach() if total is None else total + loss.detach()
        return total / steps


def masked_mse(values: Tensor, actions: Tensor, rewards: Tensor) -> Tensor:
    """Mean over the batch of (value of the pulled arm - reward)^2: values [M, B, k] -> [M]."""
    pulled = torch.gather(values, -1, actions[..., None])[..., 0]
    return (pulled - rewards).pow(2).mean(-1)


class RMSNetworkAgent(BanditAgent):
    """Base of the Showdown's point-estimate networks: one stacked MLP per trial, trained on
    the pulled arm's reward with :class:`RMSTrainer`. Subclasses change ``_minibatch_loss``
    (e.g. dropout masks) or extend ``_train``."""

    settings_class = RMSSettings

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        init = TrialStreams(self.seeds, "init", self.device).generators
        self.net = StackedMLP(
            init, context_dim, num_actions, self.settings.hidden, self.device, self.dtype
        )
        self.trainer = RMSTrainer(self.net.parameters(), self.settings)

    def _minibatch_loss(self, ctx: Tensor, actions: Tensor, rewards: Tensor) -> Tensor:
        return masked_mse(self.net(ctx), actions, rewards)

    def _train(self) -> Tensor:
        def loss(step: int) -> Tensor:
            idx = self.buffer.sample_indices(self.train_streams, self.settings.batch_size)
            ctx, actions, rewards = self.buffer.gather(idx)
            return self._minibatch_loss(ctx, actions, self.training_targets(rewards))

        return self.trainer.retrain(self.settings.train_steps, loss)
