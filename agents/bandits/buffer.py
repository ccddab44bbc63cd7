"""A replay buffer for S parallel trials that all advance one step at a time."""

from __future__ import annotations

import torch

from .streams import TrialStreams

__all__ = ["TrialBuffer"]


class TrialBuffer:
    """Contexts [S, n, d], actions [S, n], rewards [S, n], preallocated for the horizon n."""

    def __init__(
        self,
        num_trials: int,
        horizon: int,
        context_dim: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.contexts = torch.zeros(num_trials, horizon, context_dim, device=device, dtype=dtype)
        self.actions = torch.zeros(num_trials, horizon, dtype=torch.long, device=device)
        self.rewards = torch.zeros(num_trials, horizon, device=device, dtype=dtype)
        self.size = 0

    def add(self, contexts: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor) -> None:
        if self.size >= self.contexts.shape[1]:
            raise RuntimeError(f"the buffer holds {self.size} steps, its horizon; reset the agent")
        self.contexts[:, self.size] = contexts
        self.actions[:, self.size] = actions
        self.rewards[:, self.size] = rewards
        self.size += 1

    def sample_indices(self, streams: TrialStreams, batch: int) -> torch.Tensor:
        """[S, batch] indices drawn uniformly with replacement from the data so far."""
        u = streams.uniform(batch, dtype=torch.float64)
        return (u * self.size).long().clamp_max(self.size - 1)

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Contexts [S, B, d], actions [S, B], rewards [S, B] at per-trial indices [S, B]."""
        d = self.contexts.shape[-1]
        ctx = torch.gather(self.contexts, 1, idx[..., None].expand(*idx.shape, d))
        return ctx, torch.gather(self.actions, 1, idx), torch.gather(self.rewards, 1, idx)
