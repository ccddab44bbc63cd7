"""NeuralGreedy (the Showdown's 'RMS'): a point-estimate network with one output per arm,
trained on the pulled arm's reward, acting greedily (optionally epsilon-greedy)."""

from __future__ import annotations

import dataclasses

import torch

from .base import BanditAgent
from .models import StackedMLP
from .rms import RMSSettings, RMSTrainer, masked_mse
from .streams import TrialStreams

__all__ = ["NeuralGreedy", "NeuralGreedySettings"]


@dataclasses.dataclass(frozen=True)
class NeuralGreedySettings(RMSSettings):
    epsilon: float = 0.0
    """Probability of a uniformly random arm instead of the greedy one."""


class NeuralGreedy(BanditAgent):
    name = "neural_greedy"
    settings_class = NeuralGreedySettings

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        init = TrialStreams(self.seeds, "init", self.device).generators
        self.net = StackedMLP(
            init, context_dim, num_actions, self.settings.hidden, self.device, self.dtype
        )
        self.trainer = RMSTrainer(self.net.parameters(), self.settings)

    def _act(self, contexts: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            greedy = self.net(contexts[:, None, :])[:, 0].argmax(-1)
        if self.settings.epsilon <= 0:
            return greedy
        u = self.act_streams.uniform(2, dtype=torch.float64)
        explore = u[:, 0] < self.settings.epsilon
        random_arm = (u[:, 1] * self.num_actions).long().clamp_max(self.num_actions - 1)
        return torch.where(explore, random_arm, greedy)

    def _train(self) -> torch.Tensor:
        def loss(step: int) -> torch.Tensor:
            idx = self.buffer.sample_indices(self.train_streams, self.settings.batch_size)
            ctx, actions, rewards = self.buffer.gather(idx)
            return masked_mse(self.net(ctx), actions, rewards)

        return self.trainer.retrain(self.settings.train_steps, loss)
