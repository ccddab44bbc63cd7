"""Posterior draws as explicit values (the ENN idea of an *index*).

A :class:`Noise` holds one standard-normal vector per stochastic layer, with a common leading
``sample_shape``. The network is a function of (x, noise): the same noise gives the same
weights on every call and for every batch, which is what a Thompson-sampling agent holds for
one decision or one episode. Noise with sample shape (K,) evaluates K draws in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .checks import check_generator, check_same_device, sample_shape_of

if TYPE_CHECKING:
    from .mlp import VariationalMLP

__all__ = ["Noise", "PosteriorDraw"]


@dataclass(frozen=True)
class Noise:
    """Standard-normal noise of every stochastic layer, each [*sample_shape, noise_dim]."""

    tensors: tuple[Tensor, ...]
    sample_shape: torch.Size

    def __getitem__(self, index) -> Noise:
        """Select draws along the leading sample dimension(s): ``noise[3]``, ``noise[:5]``."""
        if not self.sample_shape:
            raise IndexError("this Noise holds a single draw (sample_shape=()); nothing to index")
        tensors = tuple(t[index] for t in self.tensors)
        probe = torch.empty(self.sample_shape, device="meta")[index]
        return Noise(tensors, probe.shape)

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Noise:
        return Noise(
            tuple(t.to(device=device, dtype=dtype) for t in self.tensors), self.sample_shape
        )

    @staticmethod
    def stack(draws: Sequence[Noise]) -> Noise:
        """Stack single draws (sample_shape ()) into one Noise with sample_shape (len(draws),)."""
        if not draws or any(d.sample_shape for d in draws):
            raise ValueError("Noise.stack needs a non-empty list of single draws (sample_shape=())")
        tensors = tuple(torch.stack(ts) for ts in zip(*(d.tensors for d in draws), strict=True))
        return Noise(tensors, torch.Size([len(draws)]))


def standard_noise(
    sample_shape: Sequence[int] | int,
    dims: Sequence[int],
    like: Tensor,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Noise:
    """Standard-normal noise of ``dims`` per layer for ``sample_shape`` draws, on ``like``'s
    device and dtype, from ``generator`` or ``seed`` (one randn call for all layers: fewer
    calls on the per-decision hot path)."""
    shape = sample_shape_of(sample_shape)
    if seed is not None:
        if generator is not None:
            raise ValueError("pass either seed= or generator=, not both")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed={seed!r} must be an int")
        generator = torch.Generator(device=like.device).manual_seed(seed)
    check_generator(generator, like.device)
    flat = torch.randn(
        (*shape, sum(dims)), generator=generator, device=like.device, dtype=like.dtype
    )
    return Noise(tuple(flat.split(list(dims), dim=-1)), shape)


def check_noise(noise: object, dims: Sequence[int], like: Tensor) -> None:
    """``noise`` must be a :class:`Noise` with per-layer sizes ``dims`` on ``like``'s device."""
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be an ivi_rl.Noise (from sample_noise), got {type(noise)}")
    got = [t.shape[-1] for t in noise.tensors]
    if got != list(dims):
        raise ValueError(
            f"noise has per-layer sizes {got}; this model's stochastic layers need {list(dims)}"
        )
    for t in noise.tensors:
        check_same_device(t, like, "noise")


class PosteriorDraw:
    """A held posterior draw (or K of them): call it on any batch, any number of times.

    The draw is an index into the variational family, not a frozen copy of the weights: if the
    model keeps training, the same index gives the correspondingly updated network.
    """

    def __init__(self, model: VariationalMLP, noise: Noise) -> None:
        self.model = model
        self.noise = noise

    @property
    def sample_shape(self) -> torch.Size:
        return self.noise.sample_shape

    def __call__(self, x: Tensor, *, x_has_sample_dims: bool = False) -> Tensor:
        return self.model(x, self.noise, x_has_sample_dims=x_has_sample_dims)

    def __repr__(self) -> str:
        return f"PosteriorDraw(sample_shape={tuple(self.sample_shape)})"
