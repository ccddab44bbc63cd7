"""Uniform: a uniformly random arm at every step (the Showdown's normaliser, = 100)."""

from __future__ import annotations

import torch

from .base import BanditAgent

__all__ = ["Uniform"]


class Uniform(BanditAgent):
    name = "uniform"

    def _act(self, contexts: torch.Tensor) -> torch.Tensor:
        u = self.act_streams.uniform(dtype=torch.float64)
        return (u * self.num_actions).long().clamp_max(self.num_actions - 1)
