"""The variational MLP and its factory :func:`make_mlp`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .checks import check_same_device
from .draws import Noise, PosteriorDraw, check_noise, standard_noise
from .enums import Activation, CovarianceFamily, LayerKind, StochasticLayers, parse_enum
from .linear import VariationalLinear
from .parametrizations import Parametrization, get_parametrization

__all__ = ["DEFAULT_RANK", "Predictive", "VariationalMLP", "make_mlp"]

DEFAULT_RANK = 10
"""Rank of a 'lowrank' factor when none is given (capped at the layer's parameter count)."""

_ACTIVATIONS: dict[Activation, type[nn.Module]] = {
    Activation.RELU: nn.ReLU,
    Activation.TANH: nn.Tanh,
    Activation.GELU: nn.GELU,
    Activation.SILU: nn.SiLU,
    Activation.ELU: nn.ELU,
    Activation.IDENTITY: nn.Identity,
}


class Predictive(NamedTuple):
    """Monte Carlo predictive moments over weight draws."""

    mean: Tensor
    std: Tensor


class VariationalMLP(nn.Module):
    """An MLP of :class:`VariationalLinear` layers with a per-layer covariance choice.

    Prefer :func:`make_mlp`, which maps the paper's presets to ``covs``/``ranks``.

    ``forward(x, noise)`` evaluates the draws indexed by ``noise``; without noise it draws
    ``sample_shape`` fresh ones (default: one draw, no sample dimension, as in training).
    Output shape: [*sample_shape, *batch, out_features].

    ``forward`` checks its arguments once and then evaluates the layers as functions of
    their parameters (as ``nn.MultiheadAttention`` does its projections), not through
    their ``__call__``: forward hooks on the MLP fire, hooks on its single layers do not.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (100, 100),
        *,
        covs: Sequence[str | CovarianceFamily | None],
        ranks: Sequence[int | None] | None = None,
        activation: str | Activation = Activation.RELU,
        parametrization: str | Parametrization = "mup",
        bias: bool = True,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        widths = [in_features, *_check_hidden(hidden), out_features]
        n_layers = len(widths) - 1
        ranks = [None] * n_layers if ranks is None else list(ranks)
        if len(covs) != n_layers or len(ranks) != n_layers:
            raise ValueError(
                f"covs has {len(covs)} and ranks {len(ranks)} entries; this MLP has "
                f"{n_layers} layers (len(hidden) + 1)"
            )
        self.activation = parse_enum(Activation, activation, "activation")
        self.act = _ACTIVATIONS[self.activation]()
        param = get_parametrization(parametrization)
        self.layers = nn.ModuleList(
            VariationalLinear(
                widths[i],
                widths[i + 1],
                bias,
                cov=covs[i],
                rank=ranks[i],
                layer_kind=_layer_kind(i, n_layers),
                parametrization=param,
                device=device,
                dtype=dtype,
            )
            for i in range(n_layers)
        )
        self.in_features, self.out_features = in_features, out_features
        self.hidden = tuple(widths[1:-1])
        self._noise_dims = [layer.noise_dim for layer in self.layers if layer.is_stochastic]

    # ------------------------------------------------------------------ structure
    @property
    def parametrization(self) -> Parametrization:
        return self.layers[0].parametrization

    @property
    def stochastic_layers(self) -> list[VariationalLinear]:
        return [layer for layer in self.layers if layer.is_stochastic]

    @property
    def is_stochastic(self) -> bool:
        return any(layer.is_stochastic for layer in self.layers)

    @property
    def noise_dim(self) -> int:
        """Total length R of one draw's noise, all stochastic layers together."""
        return sum(self._noise_dims)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw a fresh prior (= initialisation) for every layer."""
        for layer in self.layers:
            layer.reset_parameters(generator)

    # ------------------------------------------------------------------ draws
    def sample_noise(
        self,
        sample_shape: Sequence[int] | int = (),
        generator: torch.Generator | None = None,
        *,
        seed: int | None = None,
    ) -> Noise:
        """Noise indexing ``sample_shape`` independent draws, from ``generator`` or ``seed``."""
        return standard_noise(
            sample_shape, self._noise_dims, self.layers[0].weight, generator, seed
        )

    def draw(
        self,
        seed: int | None = None,
        *,
        generator: torch.Generator | None = None,
        sample_shape: Sequence[int] | int = (),
    ) -> PosteriorDraw:
        """Hold one posterior draw (or ``sample_shape`` of them) to evaluate later."""
        return PosteriorDraw(self, self.sample_noise(sample_shape, generator, seed=seed))

    # ------------------------------------------------------------------ evaluation
    def forward(
        self,
        x: Tensor,
        noise: Noise | None = None,
        *,
        sample_shape: Sequence[int] | int = (),
        generator: torch.Generator | None = None,
        x_has_sample_dims: bool = False,
    ) -> Tensor:
        """Evaluate the draws ``noise`` (or fresh ones) on ``x``.

        ``x`` is [*batch, in_features], or [*sample_shape, *batch, in_features] with
        ``x_has_sample_dims=True`` (one input batch per draw, e.g. one per environment).
        """
        if noise is None:
            noise = self.sample_noise(sample_shape, generator)
        else:
            self._check_noise(noise)
        self._check_x(x, noise.sample_shape, x_has_sample_dims)
        return self._evaluate(x, noise.tensors, noise.sample_shape, x_has_sample_dims)

    def _check_x(self, x: Tensor, sample_shape: torch.Size, x_has_sample_dims: bool) -> None:
        """``x`` must be [*batch, in] (or [*sample_shape, *batch, in]) on the weights' device."""
        check_same_device(x, self.layers[0].weight, "x")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x has shape {tuple(x.shape)}; expected [*batch, {self.in_features}] "
                f"(in_features={self.in_features})"
            )
        if x_has_sample_dims and x.dim() < len(sample_shape) + 1:
            raise ValueError(
                f"x has shape {tuple(x.shape)} but x_has_sample_dims=True with sample_shape "
                f"{tuple(sample_shape)}; expected [*sample_shape, *batch, {self.in_features}]"
            )

    def _evaluate(
        self,
        x: Tensor,
        zs: Sequence[Tensor],
        sample_shape: torch.Size,
        x_has_sample_dims: bool,
    ) -> Tensor:
        """:meth:`forward` on arguments it has checked: the stochastic layers' noise ``zs``."""
        s = len(sample_shape)
        batch = x.shape[s:-1] if x_has_sample_dims else x.shape[:-1]
        h = x.reshape(*x.shape[:s], -1, self.in_features) if x_has_sample_dims else x
        has_samples, zs = x_has_sample_dims, iter(zs)
        for i, layer in enumerate(self.layers):
            if i:
                h = self.act(h)
            if layer.is_stochastic:
                h = layer._forward_sampled(h, next(zs), has_samples)
                has_samples = has_samples or s > 0
            else:
                h = F.linear(h, layer.weight, layer.bias)
        if s and not has_samples:  # a deterministic network: every draw is the same
            h = h.expand(*sample_shape, *h.shape)
        if not s:
            return h
        return h.reshape(*h.shape[:s], *batch, self.out_features)

    def output_moments(self, x: Tensor, noise: Noise) -> tuple[Tensor, Tensor]:
        """Mean and variance of the outputs over the *output layer's* noise, every earlier
        layer at the draw ``noise`` (one draw, shared by the batch x [*batch, in]).

        With these, E[(f(x) - y)^2] over the output layer's noise is (mean - y)^2 + variance
        exactly: a Rao-Blackwellised estimate of the expected squared loss, whose gradient
        with respect to the output layer's covariance no longer carries sampling noise. The
        output layer's part of ``noise`` is not used."""
        self._check_noise(noise)
        if noise.sample_shape:
            raise ValueError(
                f"output_moments takes one draw; got sample_shape {tuple(noise.sample_shape)}"
            )
        h, zs = x, iter(noise.tensors)
        for layer in self.layers[:-1]:
            h = layer(h, next(zs)) if layer.is_stochastic else layer(h)
            h = self.act(h)
        return self.layers[-1].mean_and_variance(h)

    def posterior_mean(self, x: Tensor) -> Tensor:
        """The network with every weight at its mean (a deterministic pass)."""
        h = x
        for i, layer in enumerate(self.layers):
            if i:
                h = self.act(h)
            h = layer.forward_mean(h)
        return h

    def predictive(
        self, x: Tensor, num_samples: int = 100, generator: torch.Generator | None = None
    ) -> Predictive:
        """Predictive mean and std of the outputs over ``num_samples`` weight draws."""
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
            raise ValueError(f"num_samples={num_samples!r} must be an int >= 2")
        out = self(x, sample_shape=(num_samples,), generator=generator)
        return Predictive(out.mean(0), out.std(0))

    def marginal_std(self) -> dict[str, Tensor]:
        """Marginal posterior std of every parameter of each stochastic layer, by layer name."""
        return {
            f"layers.{i}": layer.cov.marginal_std()
            for i, layer in enumerate(self.layers)
            if layer.cov is not None
        }

    def _check_noise(self, noise: Noise) -> None:
        check_noise(noise, self._noise_dims, self.layers[0].weight)


def _check_hidden(hidden: Sequence[int]) -> list[int]:
    if isinstance(hidden, int) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden
    ):
        raise ValueError(f"hidden={hidden!r} must be a sequence of positive ints, e.g. (100, 100)")
    return list(hidden)


def _layer_kind(i: int, n_layers: int) -> LayerKind:
    # A single layer maps finite to finite width: no muP width scaling applies, so it gets the
    # 'hidden' rules (1/sqrt(fan_in) init, LR multiplier 1), i.e. standard SGD on a linear model.
    if n_layers == 1:
        return LayerKind.HIDDEN
    if i == 0:
        return LayerKind.INPUT
    return LayerKind.OUTPUT if i == n_layers - 1 else LayerKind.HIDDEN


def _stochastic_indices(preset: StochasticLayers, n_layers: int) -> set[int]:
    return {
        StochasticLayers.INPUT_OUTPUT: {0, n_layers - 1},
        StochasticLayers.LAST: {n_layers - 1},
        StochasticLayers.ALL: set(range(n_layers)),
        StochasticLayers.NONE: set(),
    }[preset]


def make_mlp(
    in_features: int,
    out_features: int,
    hidden: Sequence[int] = (100, 100),
    *,
    stochastic: str | StochasticLayers = StochasticLayers.INPUT_OUTPUT,
    cov: str | CovarianceFamily | None = "auto",
    rank: int | None = None,
    activation: str | Activation = Activation.RELU,
    parametrization: str | Parametrization = "mup",
    bias: bool = True,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> VariationalMLP:
    """Build a variational MLP from string options.

    Args:
        stochastic: which layers carry a covariance: ``'input_output'`` (the paper's default),
            ``'last'``, ``'all'`` or ``'none'``.
        cov: the family of the stochastic layers: ``'lowrank'``, ``'diagonal'``, ``'full'``;
            ``'auto'`` picks ``'lowrank'`` for 'input_output' and 'last', ``'diagonal'``
            (mean-field) for 'all', and ``None`` for 'none'.
        rank: rank of the 'lowrank' factors (default :data:`DEFAULT_RANK`), capped at each
            layer's parameter count: a rank above a small layer's size means full rank there.
    """
    preset = parse_enum(StochasticLayers, stochastic, "stochastic")
    family = _resolve_cov(cov, preset, rank)
    n_layers = len(_check_hidden(hidden)) + 1
    widths = [in_features, *hidden, out_features]
    chosen = _stochastic_indices(preset, n_layers)
    covs, ranks = [], []
    for i in range(n_layers):
        stochastic_layer = i in chosen
        covs.append(family if stochastic_layer else None)
        if stochastic_layer and family is CovarianceFamily.LOWRANK:
            n_params = widths[i + 1] * widths[i] + (widths[i + 1] if bias else 0)
            ranks.append(min(DEFAULT_RANK if rank is None else rank, n_params))
        else:
            ranks.append(None)
    return VariationalMLP(
        in_features,
        out_features,
        hidden,
        covs=covs,
        ranks=ranks,
        activation=activation,
        parametrization=parametrization,
        bias=bias,
        device=device,
        dtype=dtype,
    )


def _resolve_cov(
    cov: str | CovarianceFamily | None, preset: StochasticLayers, rank: int | None
) -> CovarianceFamily | None:
    if cov == "auto":
        cov = {
            StochasticLayers.INPUT_OUTPUT: CovarianceFamily.LOWRANK,
            StochasticLayers.LAST: CovarianceFamily.LOWRANK,
            StochasticLayers.ALL: CovarianceFamily.DIAGONAL,
            StochasticLayers.NONE: None,
        }[preset]
    if cov is None:
        if preset is not StochasticLayers.NONE:
            raise ValueError(
                f"cov=None makes every layer deterministic, but stochastic={preset.value!r} asks "
                "for stochastic layers; pass stochastic='none' or a family "
                "('lowrank', 'diagonal', 'full')"
            )
        if rank is not None:
            raise ValueError(f"rank={rank!r} needs cov='lowrank', but the network is deterministic")
        return None
    family = parse_enum(CovarianceFamily, cov, "cov")
    if preset is StochasticLayers.NONE:
        raise ValueError(
            f"stochastic='none' builds a deterministic network, but cov={family.value!r} was "
            "given; pass cov=None (or 'auto'), or choose stochastic layers"
        )
    if rank is not None and family is not CovarianceFamily.LOWRANK:
        raise ValueError(f"rank={rank!r} only applies to cov='lowrank', not cov={family.value!r}")
    return family
