"""Per-arm reward noise for the noise-aware IVI-TS variant, estimated without a model fit.

The noise std of an arm has to be told apart from misspecification (a fit too simple for
the rewards) and from epistemic error (a fit that has not seen enough): residuals of a
linear fit count the first, prequential residuals of the network count the second. A
nearest-neighbour difference estimator needs neither: for each datum, the reward of the
nearest earlier context where the same arm was pulled; half the mean squared difference
estimates sigma_a^2 + (a term that shrinks as contexts get dense), whatever the model
(Devroye, Gyorfi, Lugosi, Walk, "A nearest neighbor estimate of the residual variance",
EJS 2018; the sequential pairing is this project's, so that each step costs O(window)).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NeighbourNoise"]


class NeighbourNoise:
    """Running nearest-neighbour noise estimate per (trial, arm).

    ``add`` pairs each new datum with its nearest earlier datum of the same arm among the
    last ``window`` steps (Euclidean distance of the given features) and records half the
    squared reward difference; ``variance`` returns the per-arm mean of those records.
    """

    def __init__(
        self, num_trials: int, num_actions: int, window: int, device: torch.device
    ) -> None:
        self.window = window
        self.total = torch.zeros(num_trials, num_actions, dtype=torch.float64, device=device)
        self.count = torch.zeros(num_trials, num_actions, dtype=torch.float64, device=device)

    def add(
        self,
        features: Tensor,
        actions: Tensor,
        rewards: Tensor,
        past_features: Tensor,
        past_actions: Tensor,
        past_rewards: Tensor,
    ) -> None:
        """features [S, d], actions [S], rewards [S]; past_* [S, t, ...], the data before."""
        if past_actions.shape[1] == 0:
            return
        lo = max(0, past_actions.shape[1] - self.window)
        dist = (past_features[:, lo:] - features[:, None]).pow(2).sum(-1)
        same = past_actions[:, lo:] == actions[:, None]
        dist = torch.where(same, dist, torch.full_like(dist, float("inf")))
        nearest = dist.argmin(1, keepdim=True)
        found = same.any(1)
        half_sq = 0.5 * (rewards - past_rewards[:, lo:].gather(1, nearest)[:, 0]).double() ** 2
        rows = torch.arange(len(actions), device=actions.device)
        self.total[rows, actions] += torch.where(found, half_sq, torch.zeros_like(half_sq))
        self.count[rows, actions] += found.double()

    def variance(self) -> Tensor:
        """[S, k] estimated noise variance per arm (0 where an arm has no pair yet)."""
        return self.total / self.count.clamp_min(1.0)
