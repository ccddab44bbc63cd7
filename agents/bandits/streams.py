"""Per-trial random streams.

Each trial owns one ``torch.Generator`` per purpose ('act', 'train', 'init', ...), seeded from
(trial seed, purpose). Draws are made per trial and stacked, so a trial sees the same random
numbers whether it runs alone or batched with others: the vectorized path is then the same
experiment, not merely a statistically similar one. Per-step draws are taken in blocks to
keep the per-step cost (and, on a GPU, kernel launches) independent of the number of trials.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["BlockedNormal", "TrialStreams", "derive_seed"]

_PURPOSES = {
    "init": 0,
    "act": 1,
    "train": 2,
    "data": 3,
    "diagnostics": 4,
    "codes": 5,
    "stability": 6,
}


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for (trial seed, purpose), independent across purposes."""
    state = np.random.SeedSequence([int(seed), _PURPOSES[purpose]]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


class TrialStreams:
    """One generator per trial for one purpose; methods return tensors with a leading [S]."""

    def __init__(self, seeds: Sequence[int], purpose: str, device: torch.device) -> None:
        self.device = device
        self.generators = [
            torch.Generator(device=device).manual_seed(derive_seed(s, purpose)) for s in seeds
        ]

    def __len__(self) -> int:
        return len(self.generators)

    def normal(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.stack(
            [
                torch.randn(shape, generator=g, device=self.device, dtype=dtype)
                for g in self.generators
            ]
        )

    def uniform(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.stack(
            [
                torch.rand(shape, generator=g, device=self.device, dtype=dtype)
                for g in self.generators
            ]
        )

    def gamma(self, concentration: torch.Tensor) -> torch.Tensor:
        """Gamma(concentration, 1) draws; ``concentration`` is [S, ...]."""
        return torch.stack(
            [
                torch._standard_gamma(c, generator=g)
                for c, g in zip(concentration, self.generators, strict=True)
            ]
        )


class BlockedNormal:
    """Standard normals of shape [S, *shape] per call, drawn ``block`` steps at a time."""

    def __init__(
        self, streams: TrialStreams, shape: Sequence[int], dtype: torch.dtype, block: int = 256
    ):
        self.streams, self.shape, self.dtype, self.block = streams, tuple(shape), dtype, block
        self._buffer: torch.Tensor | None = None
        self._i = block

    def __call__(self) -> torch.Tensor:
        if self._i == self.block:
            self._buffer = self.streams.normal(self.block, *self.shape, dtype=self.dtype)
            self._i = 0
        out = self._buffer[:, self._i]
        self._i += 1
        return out
