"""Noise-aware IVI: the prior anchor, per-datum noise weights and draw-coupled targets.

A variant, not a default: on the Showdown datasets it did not beat plain IVI
(experiments/RESULTS.md, "What the variants did").

Plain IVI is the noiseless member of a family. In the linear-Gaussian case the draw
w(z) = mu + S z that minimises

    E_z [ sum_n (x_n^T w(z) - y_n - sigma_n c_n^T z)^2 / sigma_n^2
          + || w(z) - (mu0 + S0 z) ||^2_{Sigma0^-1} ]

has mu* = (X^T D X + Sigma0^-1)^-1 (X^T D y + Sigma0^-1 mu0) with D = diag(1/sigma_n^2), the
Bayesian posterior mean, and E[S* S*^T] = (X^T D X + Sigma0^-1)^-1 over the prior draw S0 and
the codes c_n (E[c_n c_n^T] = I/R), the posterior covariance. Each term has one job:

- the **weights** 1/sigma_n^2 (normalised here to mean 1, so muP's learning rates keep their
  meaning) say how much each datum is trusted;
- the **anchor** to the prior draw (:class:`PriorAnchor`), at strength sigma_bar^2 / N with
  sigma_bar^2 = 1 / mean(1/sigma_n^2), keeps the mean from interpolating noise;
- the **perturbation** sigma_n c_n^T z (:func:`perturbation_codes`, ``perturbation=`` of
  :func:`noise_aware_loss`) leaves each draw as wide as the noise on the data.

With every sigma_n = 0 the weights are 1, the anchor's strength is 0 and the perturbation
vanishes: plain IVI, whose implicit bias gives the 2-Wasserstein limit. Sigma0 is the
diagonal of each parameter's prior variance (its init variance; a covariance entry takes
the variance of the mean entry it belongs to).

The anchor is applied as an exact proximal step after each optimizer step, not as a penalty
in the loss: its curvature times muP's per-layer rates (input layer x fan_out) exceeds
SGD's stability bound, while the proximal step is stable for every rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ivi_rl.checks import check_positive_int
from ivi_rl.draws import Noise
from ivi_rl.enums import Loss, ParamKind, parse_enum
from ivi_rl.linear import VariationalLinear
from ivi_rl.mlp import VariationalMLP
from ivi_rl.objectives import per_datum_loss

__all__ = [
    "NoiseWeights",
    "PriorAnchor",
    "anchor_proximal_",
    "noise_aware_loss",
    "noise_weights",
    "perturbation_codes",
    "perturbation_shift",
    "prior_variances",
    "sgd_step_size",
]


class NoiseWeights(NamedTuple):
    """Per-datum loss weights and the anchor's noise scale, from the data's noise stds."""

    weights: Tensor
    """[..., N] weights sigma_bar^2 / sigma_n^2 (mean 1 over the last dimension)."""
    scale: Tensor
    """[...] sigma_bar^2 = 1 / mean(1 / sigma_n^2): the anchor's strength is scale / N."""


def noise_weights(noise_std: Tensor) -> NoiseWeights:
    """Weights and anchor scale for noise stds ``noise_std`` [..., N] of N data points.

    Rows whose stds are all 0 give weights 1 and scale 0 (plain IVI). A row mixing zero and
    positive stds is an error: a noiseless datum would take all the weight.
    """
    if not isinstance(noise_std, Tensor) or noise_std.dim() == 0:
        raise TypeError("noise_std must be a Tensor [..., N] with one std per data point")
    if not torch.isfinite(noise_std).all() or (noise_std < 0).any():
        raise ValueError("noise_std must hold finite values >= 0")
    zero = noise_std == 0
    all_zero = zero.all(-1)
    if (zero.any(-1) & ~all_zero).any():
        raise ValueError(
            "noise_std mixes zero and positive values in one data set; give every point a "
            "positive std (a floor), or all zeros for plain IVI"
        )
    safe = torch.where(zero, torch.ones_like(noise_std), noise_std)
    precision = safe.pow(-2)
    mean_precision = precision.mean(-1, keepdim=True)
    weights = torch.where(all_zero[..., None], torch.ones_like(safe), precision / mean_precision)
    scale = torch.where(all_zero, torch.zeros_like(safe[..., 0]), 1 / mean_precision[..., 0])
    return NoiseWeights(weights, scale)


def perturbation_codes(
    shape: tuple[int, ...] | torch.Size,
    noise_dim: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Codes c_n ~ N(0, I / R) of shape [*shape, R] with R = ``noise_dim`` (the model's total
    noise size): the target of datum n under draw z is shifted by sigma_n c_n^T z, a shift of
    variance sigma_n^2 over draws. Store them with the data (or regenerate them from a seed)
    so that a datum keeps its code across retrains."""
    if isinstance(noise_dim, bool) or not isinstance(noise_dim, int) or noise_dim < 1:
        raise ValueError(f"noise_dim={noise_dim!r} must be a positive int (the model's noise size)")
    codes = torch.randn((*shape, noise_dim), generator=generator, device=device, dtype=dtype)
    return codes / math.sqrt(noise_dim)


def perturbation_shift(noise: Noise, codes: Tensor) -> Tensor:
    """c_n^T z for every draw z of ``noise`` (all stochastic layers' noise, concatenated: R
    values) and every code c_n of ``codes`` [*batch, R]: shape [*sample_shape, *batch]. The
    target of datum n under draw z is shifted by sigma_n times this."""
    z = torch.cat(noise.tensors, dim=-1)
    r = z.shape[-1]
    if codes.dim() == 0 or codes.shape[-1] != r:
        raise ValueError(
            f"codes has shape {tuple(codes.shape)}; expected [*batch, R] with R = {r}, the "
            "model's noise size (one code per data point)"
        )
    batch = codes.shape[:-1]
    shift = z.reshape(-1, r) @ codes.reshape(-1, r).T
    return shift.reshape(*noise.sample_shape, *batch)


def prior_variances(model: nn.Module) -> dict[str, float]:
    """The prior variance sigma0^2 of every parameter of the model's variational layers, by
    parameter name: the init variance of a mean entry, and for a covariance tensor the
    variance of the mean entries it belongs to (E[S0 S0^T] = sigma0^2 I)."""
    out: dict[str, float] = {}
    for prefix, layer in model.named_modules():
        if not isinstance(layer, VariationalLinear):
            continue
        head = f"{prefix}." if prefix else ""
        var = {kind: layer.init_std(kind) ** 2 for kind in ParamKind}
        out[head + "weight"] = var[ParamKind.WEIGHT]
        if layer.bias is not None:
            out[head + "bias"] = var[ParamKind.BIAS]
        if layer.cov is not None:
            for name, _, kind in layer.cov.parameter_kinds():
                out[f"{head}cov.{name}"] = var[kind]
    return out


def sgd_step_size(group: dict) -> float:
    """The step size of an SGD parameter group in a steady state, lr / (1 - momentum): the
    proximal step's rate, so its fixed point does not depend on the momentum."""
    return group["lr"] / (1.0 - group.get("momentum", 0.0))


def anchor_proximal_(
    params: Tensor | Sequence[Tensor],
    priors: Tensor | Sequence[Tensor],
    steps: Tensor | float | Sequence[Tensor | float],
) -> None:
    """In place, for every parameter p with prior p0 and step s >= 0:
    ``p = argmin_q |q - p|^2 / 2 + s |q - p0|^2 / 2 = (p + s p0) / (1 + s)``.

    One tensor or equal-length sequences; a step is a number or a tensor that broadcasts
    against its parameter. Computed as lerp(p, p0, s / (1 + s)) with torch's foreach kernels:
    one call for all tensors, not two per tensor."""
    if isinstance(params, Tensor):
        params, priors, steps = [params], [priors], [steps]
    params, priors, steps = list(params), list(priors), list(steps)
    if not len(params) == len(priors) == len(steps):
        raise ValueError(
            f"anchor_proximal_ got {len(params)} params, {len(priors)} priors and "
            f"{len(steps)} steps; give one prior and one step per parameter"
        )
    tensor = [isinstance(s, Tensor) for s in steps]
    with torch.no_grad():
        for use in (True, False):
            idx = [i for i, t in enumerate(tensor) if t is use]
            if not idx:
                continue
            weights = [steps[i] / (1 + steps[i]) for i in idx]
            torch._foreach_lerp_([params[i] for i in idx], [priors[i] for i in idx], weights)


class PriorAnchor:
    """The anchor term || w(z) - (mu0 + S0 z) ||^2_{Sigma0^-1}, averaged over z, for a model
    at its prior: it snapshots every parameter when constructed (construct it right after
    the model, before any training step).

    Averaged over z the term is sum_p |p - p0|^2 / sigma0_p^2 over means and covariance
    entries alike, so it pulls each parameter towards its prior value.
    """

    def __init__(self, model: nn.Module) -> None:
        variances = prior_variances(model)
        if not variances:
            raise ValueError("PriorAnchor needs a model with VariationalLinear layers")
        self.model = model
        named = dict(model.named_parameters())
        missing = sorted(set(named) - set(variances))
        if missing:
            raise ValueError(
                f"PriorAnchor knows no prior variance for {missing}; only VariationalLinear "
                "parameters can be anchored"
            )
        self.prior = {n: p.detach().clone() for n, p in named.items()}
        self.variances = variances
        self._names = {id(p): n for n, p in named.items()}

    def penalty(self) -> Tensor:
        """sum_p |p - p0|^2 / sigma0_p^2 over all parameters (differentiable)."""
        terms = [
            (p - self.prior[n]).pow(2).sum() / self.variances[n]
            for n, p in self.model.named_parameters()
        ]
        return torch.stack(terms).sum()

    def proximal_step(self, optimizer: torch.optim.Optimizer, strength: float) -> None:
        """After ``optimizer.step()``: the exact proximal step of ``strength * penalty()``
        for each parameter at its group's learning rate.

        With SGD momentum beta the step uses lr / (1 - beta), the rate at which momentum SGD
        moves in a steady state, so the fixed point is a stationary point of
        ``loss + strength * penalty()`` whatever the momentum. Only SGD is accepted.
        """
        if not isinstance(optimizer, torch.optim.SGD):
            raise TypeError(
                f"proximal_step needs torch.optim.SGD (IVI's optimizer), got "
                f"{type(optimizer).__name__}"
            )
        if not (isinstance(strength, (int, float)) and math.isfinite(strength) and strength >= 0):
            raise ValueError(f"strength={strength!r} must be a finite number >= 0")
        if strength == 0:
            return
        params, priors, steps = [], [], []
        for group in optimizer.param_groups:
            rate = sgd_step_size(group)
            for p in group["params"]:
                name = self._names.get(id(p))
                if name is None:
                    raise ValueError("the optimizer holds a parameter that is not the model's")
                params.append(p)
                priors.append(self.prior[name])
                steps.append(2.0 * strength * rate / self.variances[name])
        anchor_proximal_(params, priors, steps)


def noise_aware_loss(
    model: VariationalMLP,
    x: Tensor,
    y: Tensor,
    loss: str | Loss = Loss.MSE,
    *,
    mask: Tensor | None = None,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    noise: Noise | None = None,
    noise_std: float = 1.0,
    weights: Tensor | None = None,
    perturbation: Tensor | None = None,
    target_std: Tensor | float = 0.0,
) -> Tensor:
    """:func:`ivi_rl.expected_loss` with the noise-aware terms, for squared-error losses:

    - ``weights`` [*batch]: each data point's loss is multiplied by its weight
      (:func:`noise_weights` gives sigma_bar^2 / sigma_n^2);
    - ``perturbation`` [*batch, R] with ``target_std`` (a number or [*batch]): the target
      of point n under the draw z (all stochastic layers' noise, concatenated, R values) is
      y_n + target_std_n * c_n^T z, with c_n the point's code from :func:`perturbation_codes`.

    With neither (or ``target_std=0``) this is plain IVI's expected loss, bit for bit.
    """
    perturbed = perturbation is not None and _is_nonzero(target_std)
    if noise is None:
        check_positive_int(num_samples, "num_samples")
        shape = () if num_samples == 1 else (num_samples,)
        if perturbed:  # the draw's noise enters the targets: hold it
            noise = model.sample_noise(shape, generator)
    if noise is None:
        pred = model(x, sample_shape=shape, generator=generator)
    else:
        pred = model(x, noise)
    if perturbed:
        if parse_enum(Loss, loss, "loss") is Loss.CROSS_ENTROPY:
            raise ValueError(
                "perturbation= shifts real-valued targets; use loss='mse' or 'gaussian'"
            )
        y = y + _target_shift(noise, perturbation, target_std, y)
    per_datum = per_datum_loss(pred, y, loss, mask=mask, noise_std=noise_std)
    if weights is not None:
        if weights.shape != x.shape[:-1]:
            raise ValueError(
                f"weights has shape {tuple(weights.shape)}; expected one weight per data "
                f"point, [*batch] = {tuple(x.shape[:-1])}"
            )
        per_datum = per_datum * weights
    return per_datum.mean()


def _is_nonzero(value: Tensor | float) -> bool:
    return bool((value != 0).any()) if isinstance(value, Tensor) else value != 0


def _target_shift(noise: Noise, codes: Tensor, std: Tensor | float, y: Tensor) -> Tensor:
    """target_std_n * c_n^T z for every draw and point: [*sample_shape, *batch, 1]."""
    r = sum(t.shape[-1] for t in noise.tensors)
    if codes.shape != (*y.shape[:-1], r):
        raise ValueError(
            f"perturbation has shape {tuple(codes.shape)}; expected [*batch, R] = "
            f"{(*y.shape[:-1], r)}: one code per data point, R = the model's noise size"
        )
    return (perturbation_shift(noise, codes) * std)[..., None]
