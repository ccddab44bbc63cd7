"""Covariance families of a variational linear layer.

A layer with weight W [out, in] and bias b [out] has P = out*in + out parameters, flattened
as theta = [vec(W) (row-major), b]. Its variational distribution is one Gaussian over all
of them jointly, theta = mu + S z with z ~ N(0, I_R). Every family stores the rows of S that
belong to the weight and to the bias as separate tensors so that muP can give them different
learning rates, while one shared z keeps weight and bias jointly Gaussian.

Init (ivi-method.md, section 2): a factor S of rank R has entries N(0, sigma^2 / R), so that
E[S S^T] = sigma^2 I matches the mean's init variance; its LR is the mean's times 1/R. A
diagonal scale starts at exactly sigma (a deliberate choice: the reference implementation
draws s ~ N(0, sigma^2), which gives random signs and a chi-squared prior variance) and keeps
the mean's LR.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from .enums import CovarianceFamily, ParamKind

__all__ = [
    "Covariance",
    "DiagonalCovariance",
    "FullCovariance",
    "LowRankCovariance",
]


class Covariance(nn.Module, ABC):
    """Shared interface: noise size, init, perturbation from noise, dense form, KL."""

    family: CovarianceFamily

    def __init__(self, out_features: int, in_features: int, bias: bool) -> None:
        super().__init__()
        self.out_features = out_features
        self.in_features = in_features
        self.has_bias = bias
        self.num_params = out_features * in_features + (out_features if bias else 0)

    @property
    @abstractmethod
    def noise_dim(self) -> int:
        """Length R of the standard-normal vector z that one weight sample consumes."""

    @property
    @abstractmethod
    def lr_factor(self) -> float:
        """Family factor applied on top of the mean's LR multiplier."""

    @abstractmethod
    def reset_parameters(
        self, weight_std: float, bias_std: float, generator: torch.Generator | None = None
    ) -> None:
        """Initialise so that the marginal prior std equals the means' init std."""

    @abstractmethod
    def sample(
        self, weight: Tensor, bias: Tensor | None, z: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """mu + S z for the means ``weight`` [out, in], ``bias`` [out] and noise z [*S, R].

        Returns the sampled weight [*S, out, in] and bias [*S, out] (None without a bias).
        This is the hot path of every training step and every decision.
        """

    @abstractmethod
    def output_variance(self, x: Tensor) -> Tensor:
        """Variance over this layer's noise of x @ W^T + b for a fixed input x [*batch, in]:
        [*batch, out]. Output units of one draw may covary; only their variances are given."""

    @abstractmethod
    def factor(self) -> Tensor:
        """Dense S of shape [P, noise_dim] in the flattening [vec(W), b]."""

    @abstractmethod
    def variances(self) -> Tensor:
        """Marginal variance of every parameter, shape [P]."""

    @abstractmethod
    def log_det(self) -> Tensor:
        """log det(S S^T); -inf when the covariance is singular."""

    def parameter_kinds(self) -> list[tuple[str, nn.Parameter, ParamKind]]:
        """(name, parameter, weight-or-bias) of every tensor of this covariance."""
        kinds = [
            ("weight_" + self._suffix, getattr(self, "weight_" + self._suffix), ParamKind.WEIGHT)
        ]
        if self.has_bias:
            kinds.append(
                ("bias_" + self._suffix, getattr(self, "bias_" + self._suffix), ParamKind.BIAS)
            )
        return kinds

    _suffix: str

    def dense(self) -> Tensor:
        """The covariance matrix S S^T, shape [P, P]."""
        s = self.factor()
        return s @ s.T

    def marginal_std(self) -> Tensor:
        """Marginal std of every parameter, shape [P] (always non-negative)."""
        return self.variances().sqrt()

    def kl_to_diagonal(self, mean: Tensor, prior_var: Tensor) -> Tensor:
        """KL( N(mean, S S^T) || N(0, diag(prior_var)) ) over this layer's P parameters."""
        # Decided from the shapes, not from log_det's value: no data-dependent control flow,
        # so the KL also works under torch.func.vmap.
        if self.noise_dim < self.num_params:
            raise ValueError(
                f"KL(q||p) is infinite for a {self.family.value} covariance of rank "
                f"{self.noise_dim} over P={self.num_params} parameters; use cov='diagonal' "
                "or cov='full' for an ELBO"
            )
        log_det = self.log_det()
        trace = (self.variances() / prior_var).sum()
        mahalanobis = (mean.pow(2) / prior_var).sum()
        return 0.5 * (trace + mahalanobis - self.num_params + prior_var.log().sum() - log_det)

    def _shape(self, kind: ParamKind) -> tuple[int, ...]:
        if kind is ParamKind.WEIGHT:
            return (self.out_features, self.in_features)
        return (self.out_features,)

    def extra_repr(self) -> str:
        return f"P={self.num_params}, noise_dim={self.noise_dim}"


class DiagonalCovariance(Covariance):
    """Mean-field Gaussian: S = diag(s), s shaped like the weight and the bias."""

    family = CovarianceFamily.DIAGONAL
    _suffix = "scale"

    def __init__(
        self, out_features: int, in_features: int, bias: bool, *, device=None, dtype=None
    ) -> None:
        super().__init__(out_features, in_features, bias)
        kw = {"device": device, "dtype": dtype}
        self.weight_scale = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.bias_scale = nn.Parameter(torch.empty(out_features, **kw)) if bias else None

    @property
    def noise_dim(self) -> int:
        return self.num_params

    @property
    def lr_factor(self) -> float:
        return 1.0

    def reset_parameters(self, weight_std, bias_std, generator=None) -> None:
        with torch.no_grad():
            self.weight_scale.fill_(weight_std)
            if self.bias_scale is not None:
                self.bias_scale.fill_(bias_std)

    def sample(self, weight, bias, z):
        n_w = self.out_features * self.in_features
        z_w = z[..., :n_w].reshape(*z.shape[:-1], self.out_features, self.in_features)
        w = torch.addcmul(weight, self.weight_scale, z_w)
        if bias is None:
            return w, None
        return w, torch.addcmul(bias, self.bias_scale, z[..., n_w:])

    def output_variance(self, x: Tensor) -> Tensor:
        var = (x * x) @ self.weight_scale.pow(2).T
        return var if self.bias_scale is None else var + self.bias_scale.pow(2)

    def _flat_scale(self) -> Tensor:
        parts = [self.weight_scale.reshape(-1)]
        if self.bias_scale is not None:
            parts.append(self.bias_scale)
        return torch.cat(parts)

    def factor(self) -> Tensor:
        return torch.diag(self._flat_scale())

    def variances(self) -> Tensor:
        return self._flat_scale().pow(2)

    def log_det(self) -> Tensor:
        """log det S S^T = sum log s^2, each s^2 at least the dtype's smallest normal number:
        a scale that lands on 0 (an optimizer step can) gives a large finite KL, not an
        infinite one; above that floor the value and its gradient are unchanged."""
        variances = self._flat_scale().pow(2)
        return variances.clamp_min(torch.finfo(variances.dtype).tiny).log().sum()


class LowRankCovariance(Covariance):
    """Dense factor S of shape [P, R]; stored as weight rows [R, out, in] and bias rows [R, out]."""

    family = CovarianceFamily.LOWRANK
    _suffix = "factor"

    def __init__(
        self,
        out_features: int,
        in_features: int,
        bias: bool,
        rank: int,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(out_features, in_features, bias)
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise TypeError(f"rank={rank!r} must be an int in [1, {self.num_params}]")
        if not 1 <= rank <= self.num_params:
            raise ValueError(
                f"rank={rank} is outside [1, P={self.num_params}] for a layer with "
                f"in_features={in_features}, out_features={out_features}, bias={bias}"
            )
        self.rank = rank
        kw = {"device": device, "dtype": dtype}
        self.weight_factor = nn.Parameter(torch.empty(rank, out_features, in_features, **kw))
        self.bias_factor = nn.Parameter(torch.empty(rank, out_features, **kw)) if bias else None

    @property
    def noise_dim(self) -> int:
        return self.rank

    @property
    def lr_factor(self) -> float:
        return 1.0 / self.rank

    def reset_parameters(self, weight_std, bias_std, generator=None) -> None:
        # S_ij ~ N(0, sigma^2 / R) so that E[S S^T] = sigma^2 I, the mean's init variance.
        with torch.no_grad():
            self.weight_factor.normal_(0.0, weight_std / math.sqrt(self.rank), generator=generator)
            if self.bias_factor is not None:
                self.bias_factor.normal_(0.0, bias_std / math.sqrt(self.rank), generator=generator)

    def sample(self, weight, bias, z):
        # z @ F then add: measured faster in backward than a fused addmv/addmm, whose
        # gradient w.r.t. the transposed factor view needs an extra copy.
        lead, rank = z.shape[:-1], self.rank
        dw = (z @ self.weight_factor.view(rank, -1)).view(
            *lead, self.out_features, self.in_features
        )
        w = weight + dw
        if bias is None:
            return w, None
        if z.dim() == 1:  # the bias factor is small: one fused op, one autograd node
            return w, torch.addmv(bias, self.bias_factor.T, z)
        return w, bias + z @ self.bias_factor

    def output_variance(self, x: Tensor) -> Tensor:
        # output o moves with z by sum_i x_i S[:, o, i] (+ the bias rows): its variance is
        # that vector's squared norm
        loadings = torch.einsum("...i,roi->...ro", x, self.weight_factor)
        if self.bias_factor is not None:
            loadings = loadings + self.bias_factor
        return loadings.pow(2).sum(dim=-2)

    def factor(self) -> Tensor:
        parts = [self.weight_factor.reshape(self.rank, -1)]
        if self.bias_factor is not None:
            parts.append(self.bias_factor)
        return torch.cat(parts, dim=1).T

    def variances(self) -> Tensor:
        return self.factor().pow(2).sum(dim=1)

    def log_det(self) -> Tensor:
        s = self.factor()
        if self.rank < self.num_params:
            return torch.tensor(-math.inf, dtype=s.dtype, device=s.device)
        return 2.0 * torch.linalg.slogdet(s)[1]


class FullCovariance(LowRankCovariance):
    """Square factor (R = P): a full covariance S S^T. Its size grows as P^2, so use it only
    for small layers (an output layer, a linear model)."""

    family = CovarianceFamily.FULL

    def __init__(
        self, out_features: int, in_features: int, bias: bool, *, device=None, dtype=None
    ) -> None:
        num_params = out_features * in_features + (out_features if bias else 0)
        super().__init__(out_features, in_features, bias, num_params, device=device, dtype=dtype)
