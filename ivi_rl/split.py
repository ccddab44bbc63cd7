"""One variational MLP per output: a network whose outputs share no layer.

A Q-network's outputs (one per action) usually share every hidden layer. Under IVI that ties
the actions' posteriors together: fitting the action taken in a state moves the shared
hidden units, which collapses the spread of the action *not* taken there too, so a draw has
nothing left to try. With one MLP per output, the data of one action leave the other
actions' prior untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .draws import Noise, check_noise, standard_noise
from .mlp import VariationalMLP

__all__ = ["SplitMLP"]


class SplitMLP(nn.Module):
    """``out_features`` independent :class:`VariationalMLP` s with one output each, evaluated
    together. It has the interface of :class:`VariationalMLP` that agents use: a draw is one
    :class:`Noise` holding every sub-network's noise (their per-layer tensors in order), and
    every output is the concatenation of the sub-networks' outputs.
    """

    def __init__(self, nets: Sequence[VariationalMLP]) -> None:
        super().__init__()
        if len(nets) < 1 or any(net.out_features != 1 for net in nets):
            raise ValueError("SplitMLP needs at least one VariationalMLP, each with 1 output")
        if len({net.in_features for net in nets}) != 1:
            raise ValueError("the sub-networks of a SplitMLP must take the same input size")
        self.nets = nn.ModuleList(nets)
        self.in_features, self.out_features = nets[0].in_features, len(nets)
        self._layer_counts = [len(net._noise_dims) for net in nets]
        self._noise_dims = [d for net in nets for d in net._noise_dims]

    @property
    def noise_dim(self) -> int:
        return sum(self._noise_dims)

    def sample_noise(
        self,
        sample_shape: Sequence[int] | int = (),
        generator: torch.Generator | None = None,
        *,
        seed: int | None = None,
    ) -> Noise:
        """Noise indexing ``sample_shape`` draws of every sub-network (one randn call)."""
        weight = self.nets[0].layers[0].weight
        return standard_noise(sample_shape, self._noise_dims, weight, generator, seed)

    def split_noise(self, noise: Noise) -> list[Noise]:
        """Each sub-network's part of ``noise``."""
        self._check_noise(noise)
        return [Noise(part, noise.sample_shape) for part in self._parts(noise.tensors)]

    def _check_noise(self, noise: Noise) -> None:
        check_noise(noise, self._noise_dims, self.nets[0].layers[0].weight)

    def _parts(self, tensors: tuple[Tensor, ...]) -> list[tuple[Tensor, ...]]:
        """Each sub-network's per-layer noise tensors, in order."""
        parts, start = [], 0
        for count in self._layer_counts:
            parts.append(tensors[start : start + count])
            start += count
        return parts

    def forward(
        self,
        x: Tensor,
        noise: Noise | None = None,
        *,
        sample_shape: Sequence[int] | int = (),
        generator: torch.Generator | None = None,
        x_has_sample_dims: bool = False,
    ) -> Tensor:
        """As :meth:`VariationalMLP.forward`; output [*sample_shape, *batch, out_features].
        The arguments are checked once for all sub-networks, which are evaluated as
        :meth:`VariationalMLP.forward` evaluates its layers: hooks on them do not fire."""
        if noise is None:
            noise = self.sample_noise(sample_shape, generator)
        else:
            self._check_noise(noise)
        shape = noise.sample_shape
        self.nets[0]._check_x(x, shape, x_has_sample_dims)  # the same checks for every net
        return torch.cat(
            [
                net._evaluate(x, zs, shape, x_has_sample_dims)
                for net, zs in zip(self.nets, self._parts(noise.tensors), strict=True)
            ],
            dim=-1,
        )

    def output_moments(self, x: Tensor, noise: Noise) -> tuple[Tensor, Tensor]:
        """As :meth:`VariationalMLP.output_moments`, per output."""
        moments = [
            net.output_moments(x, part)
            for net, part in zip(self.nets, self.split_noise(noise), strict=True)
        ]
        return torch.cat([m for m, _ in moments], -1), torch.cat([v for _, v in moments], -1)

    def posterior_mean(self, x: Tensor) -> Tensor:
        return torch.cat([net.posterior_mean(x) for net in self.nets], dim=-1)
