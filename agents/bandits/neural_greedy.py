"""NeuralGreedy (the Showdown's 'RMS'): a point-estimate network with one output per arm,
trained on the pulled arm's reward, acting greedily (optionally epsilon-greedy)."""

from __future__ import annotations

import dataclasses

import torch

from .rms import RMSNetworkAgent, RMSSettings

__all__ = ["NeuralGreedy", "NeuralGreedySettings"]


@dataclasses.dataclass(frozen=True)
class NeuralGreedySettings(RMSSettings):
    epsilon: float = 0.0
    """Probability of a uniformly random arm instead of the greedy one."""


class NeuralGreedy(RMSNetworkAgent):
    name = "neural_greedy"
    settings_class = NeuralGreedySettings

    def _act(self, contexts: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            greedy = self.net(contexts[:, None, :])[:, 0].argmax(-1)
        if self.settings.epsilon <= 0:
            return greedy
        u = self.act_streams.uniform(2, dtype=torch.float64)
        explore = u[:, 0] < self.settings.epsilon
        random_arm = (u[:, 1] * self.num_actions).long().clamp_max(self.num_actions - 1)
        return torch.where(explore, random_arm, greedy)
