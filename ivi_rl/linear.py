"""The variational linear layer: ``torch.nn.Linear`` plus ``cov=``.

Sampling is explicit. ``forward(x, z)`` evaluates the weights mu + S z for the noise ``z`` of
shape [*sample_shape, noise_dim]; without ``z`` it draws one from ``generator``. A leading
sample dimension in ``z`` gives a leading sample dimension in the output. Sampling never
depends on ``module.training``: stable-baselines3 acts in eval mode, and a layer that went
deterministic there would silently stop exploring.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_generator, check_same_device, sample_shape_of
from .covariances import Covariance, DiagonalCovariance, FullCovariance, LowRankCovariance
from .enums import CovarianceFamily, LayerKind, OptimizerKind, ParamKind, parse_enum
from .parametrizations import Parametrization, get_parametrization

__all__ = ["VariationalLinear", "make_covariance"]


def make_covariance(
    cov: str | CovarianceFamily,
    out_features: int,
    in_features: int,
    bias: bool,
    rank: int | None = None,
    *,
    device=None,
    dtype=None,
) -> Covariance:
    """Build a covariance family by name; ``rank`` is required for, and only for, 'lowrank'."""
    family = parse_enum(CovarianceFamily, cov, "cov")
    kw = {"device": device, "dtype": dtype}
    if family is CovarianceFamily.LOWRANK:
        if rank is None:
            raise ValueError(
                "cov='lowrank' needs rank=R with 1 <= R <= P (parameters of the layer)"
            )
        return LowRankCovariance(out_features, in_features, bias, rank, **kw)
    if rank is not None:
        raise ValueError(f"rank={rank!r} only applies to cov='lowrank', not cov={family.value!r}")
    if family is CovarianceFamily.FULL:
        return FullCovariance(out_features, in_features, bias, **kw)
    return DiagonalCovariance(out_features, in_features, bias, **kw)


class VariationalLinear(nn.Module):
    """Linear layer whose weight and bias are jointly Gaussian, w = mu + S z.

    Args:
        in_features, out_features, bias: as in ``torch.nn.Linear``.
        cov: covariance family, ``'diagonal'``, ``'lowrank'``, ``'full'``, or ``None`` for a
            deterministic layer that behaves exactly like ``torch.nn.Linear`` (same parameter
            names, loads its state dict, same outputs).
        rank: rank R of a ``'lowrank'`` factor, 1 <= R <= P.
        layer_kind: ``'input'``, ``'hidden'`` or ``'output'``; decides the muP scalings.
        parametrization: ``'mup'`` (default), ``'sp'`` or a :class:`Parametrization`.

    The means are the parameters ``weight`` and ``bias``; a covariance lives in ``self.cov``.

    Attributes:
        is_stochastic: whether the layer has a covariance.
        noise_dim: length of the noise vector one weight sample consumes (0 if deterministic).
    """

    is_stochastic: bool
    noise_dim: int

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        cov: str | CovarianceFamily | None = None,
        rank: int | None = None,
        layer_kind: str | LayerKind = LayerKind.HIDDEN,
        parametrization: str | Parametrization = "mup",
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive int")
        self.in_features = in_features
        self.out_features = out_features
        self.layer_kind = parse_enum(LayerKind, layer_kind, "layer_kind")
        self.parametrization = get_parametrization(parametrization)
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.bias = nn.Parameter(torch.empty(out_features, **kw)) if bias else None
        if cov is None:
            if rank is not None:
                raise ValueError(f"rank={rank!r} needs cov='lowrank', but cov=None")
            self.cov: Covariance | None = None
        else:
            self.cov = make_covariance(cov, out_features, in_features, bias, rank, **kw)
        # Plain attributes: nn.Module.__getattr__ is slow, and these are read on every call.
        self.is_stochastic = self.cov is not None
        self.noise_dim = 0 if self.cov is None else self.cov.noise_dim
        self.reset_parameters()

    # ------------------------------------------------------------------ init and LR scales
    def init_std(self, param: ParamKind) -> float:
        """Prior (= init) std of a mean entry of the weight or the bias."""
        return self.parametrization.init_std(
            self.layer_kind, param, self.in_features, self.out_features
        )

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw a fresh prior: means ~ N(0, sigma^2), covariance with marginal std sigma."""
        w_std, b_std = self.init_std(ParamKind.WEIGHT), self.init_std(ParamKind.BIAS)
        with torch.no_grad():
            self.weight.normal_(0.0, w_std, generator=generator)
            if self.bias is not None:
                self.bias.normal_(0.0, b_std, generator=generator)
        if self.cov is not None:
            self.cov.reset_parameters(w_std, b_std, generator=generator)

    def lr_multipliers(
        self, optimizer: str | OptimizerKind = OptimizerKind.SGD
    ) -> list[tuple[str, nn.Parameter, float]]:
        """(name, parameter, LR multiplier) for every parameter of this layer."""
        opt = parse_enum(OptimizerKind, optimizer, "optimizer")

        def mult(kind: ParamKind) -> float:
            return self.parametrization.lr_multiplier(
                self.layer_kind, kind, self.in_features, self.out_features, opt
            )

        out = [("weight", self.weight, mult(ParamKind.WEIGHT))]
        if self.bias is not None:
            out.append(("bias", self.bias, mult(ParamKind.BIAS)))
        if self.cov is not None:
            for name, param, kind in self.cov.parameter_kinds():
                out.append((f"cov.{name}", param, mult(kind) * self.cov.lr_factor))
        return out

    # ------------------------------------------------------------------ sampling
    def sample_noise(
        self,
        sample_shape: Sequence[int] | int = (),
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Standard-normal noise z of shape [*sample_shape, noise_dim]."""
        shape = sample_shape_of(sample_shape)
        check_generator(generator, self.weight.device)
        return torch.randn(
            (*shape, self.noise_dim),
            generator=generator,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )

    def sampled_parameters(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """Weights [*S, out, in] and bias [*S, out] of the draws given by ``z``."""
        if self.cov is None:
            raise ValueError("sampled_parameters needs a stochastic layer, but cov=None")
        self._check_noise(z)
        return self.cov.sample(self.weight, self.bias, z)

    def forward(
        self,
        x: Tensor,
        z: Tensor | None = None,
        *,
        sample_shape: Sequence[int] | int = (),
        generator: torch.Generator | None = None,
        x_has_sample_dims: bool = False,
    ) -> Tensor:
        """Evaluate the layer.

        Args:
            x: [*batch, in_features], or [*sample_shape, *batch, in_features] when
                ``x_has_sample_dims`` (e.g. the output of an earlier stochastic layer, or one
                input per draw). Sample dims of ``x`` may be 1 to broadcast.
            z: noise [*sample_shape, noise_dim] selecting the draws; drawn when omitted.
            sample_shape: how many draws to take when ``z`` is omitted; () means one draw
                without a sample dimension (the training default).
            generator: source of the noise when ``z`` is omitted.

        Returns:
            [*sample_shape, *batch, out_features].
        """
        self._check_input(x)
        if not self.is_stochastic:
            out = F.linear(x, self.weight, self.bias)
            shape = sample_shape_of(sample_shape) if z is None else z.shape[:-1]
            if len(shape) and not x_has_sample_dims:
                out = out.expand(*shape, *out.shape)
            return out
        if z is None:
            z = self.sample_noise(sample_shape, generator)
        else:
            self._check_noise(z)
        return self._forward_sampled(x, z, x_has_sample_dims)

    def _forward_sampled(self, x: Tensor, z: Tensor, x_has_sample_dims: bool) -> Tensor:
        """Forward without argument checks, for callers that validated x and z already."""
        weight, bias = self.cov.sample(self.weight, self.bias, z)
        if z.dim() == 1:  # one draw shared by the whole batch: the cheap training path
            return F.linear(x, weight, bias)
        return _linear_per_draw(x, weight, bias, z.dim() - 1, x_has_sample_dims)

    def forward_mean(self, x: Tensor) -> Tensor:
        """The layer at its mean weights (the posterior-mean network's layer)."""
        check_same_device(x, self.weight, "x")
        return F.linear(x, self.weight, self.bias)

    def mean_and_variance(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance over this layer's noise of its output for a fixed input x
        [*batch, in]: both [*batch, out] (the variance is 0 for a deterministic layer)."""
        self._check_input(x)
        mean = self.forward_mean(x)
        if not self.is_stochastic:
            return mean, torch.zeros_like(mean)
        return mean, self.cov.output_variance(x)

    def _check_input(self, x: Tensor) -> None:
        check_same_device(x, self.weight, "x")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x has shape {tuple(x.shape)}; expected a last dimension of "
                f"in_features={self.in_features}"
            )

    def _check_noise(self, z: Tensor) -> None:
        if not isinstance(z, Tensor):
            raise TypeError(f"z must be a Tensor of shape [*sample_shape, {self.noise_dim}]")
        check_same_device(z, self.weight, "z")
        if z.dim() == 0 or z.shape[-1] != self.noise_dim:
            raise ValueError(
                f"z has shape {tuple(z.shape)}; expected [*sample_shape, {self.noise_dim}] "
                f"for this layer's noise_dim={self.noise_dim}"
            )

    def extra_repr(self) -> str:
        cov = None if self.cov is None else self.cov.family.value
        rank = f", rank={self.cov.noise_dim}" if cov == "lowrank" else ""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, cov={cov!r}{rank}, "
            f"layer_kind={self.layer_kind.value!r}, "
            f"parametrization={self.parametrization.name.value!r}"
        )


def _linear_per_draw(
    x: Tensor, weight: Tensor, bias: Tensor | None, n_sample_dims: int, x_has_sample_dims: bool
) -> Tensor:
    """x @ W_s^T + b_s for every draw s, batched as one matmul (no loop over draws)."""
    in_features = weight.shape[-1]
    if x_has_sample_dims:
        lead, batch = x.shape[:n_sample_dims], x.shape[n_sample_dims:-1]
        x2 = x.reshape(*lead, -1, in_features)
    else:
        batch = x.shape[:-1]
        x2 = x.reshape(-1, in_features)
    out = torch.matmul(x2, weight.transpose(-1, -2))
    if bias is not None:
        out = out + bias.unsqueeze(-2)
    return out.reshape(*out.shape[:n_sample_dims], *batch, weight.shape[-2])
