"""The IVI objective (expected loss only) and, for baselines, the KL-regularised ELBO.

IVI minimises E_q[loss] by plain SGD from the prior: no KL, no prior term, no weight decay.
The Monte Carlo estimator uses ``num_samples`` weight draws (default 1: one draw shared by
the whole batch, as in the paper), averaged over draws and data points.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_positive_int
from .draws import Noise
from .enums import Loss, ParamKind, parse_enum
from .linear import VariationalLinear
from .mlp import VariationalMLP

__all__ = ["expected_loss", "kl_divergence", "negative_elbo", "per_datum_loss"]


def per_datum_loss(
    pred: Tensor,
    y: Tensor,
    loss: str | Loss = Loss.MSE,
    *,
    mask: Tensor | None = None,
    noise_std: float = 1.0,
) -> Tensor:
    """Loss of every (draw, data point): [*sample_shape, *batch].

    ``pred`` is [*sample_shape, *batch, out]. For 'mse' and 'gaussian', ``y`` is [*batch, out]
    and ``mask`` (same shape, bool or float weights) keeps only the selected outputs, e.g. the
    pulled arm of a bandit; the loss of a data point is the sum over its kept outputs. For
    'cross_entropy', ``y`` holds class indices [*batch].
    """
    kind = parse_enum(Loss, loss, "loss")
    if kind is Loss.CROSS_ENTROPY:
        return _cross_entropy(pred, y)
    _check_target(pred, y, "y")
    err = (pred - y).pow(2)
    if kind is Loss.GAUSSIAN:
        if not noise_std > 0:
            raise ValueError(f"noise_std={noise_std!r} must be positive")
        err = 0.5 * err / noise_std**2 + math.log(noise_std) + 0.5 * math.log(2 * math.pi)
    if mask is not None:
        _check_target(pred, mask, "mask")
        err = err * mask.to(err.dtype)
    return err.sum(-1)


def expected_loss(
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
) -> Tensor:
    """The IVI training objective: mean over draws and data of :func:`per_datum_loss`, with
    ``num_samples`` fresh draws from ``generator`` or the draws ``noise``."""
    if noise is None:
        check_positive_int(num_samples, "num_samples")
        shape = () if num_samples == 1 else (num_samples,)
        pred = model(x, sample_shape=shape, generator=generator)
    else:
        pred = model(x, noise)
    return per_datum_loss(pred, y, loss, mask=mask, noise_std=noise_std).mean()


def kl_divergence(model: VariationalMLP, prior_std: float | None = None) -> Tensor:
    """KL(q || p) summed over the stochastic layers, with p = N(0, prior_std^2 I): the
    Bayes-by-Backprop baselines' prior, not IVI's.

    ``prior_std=None`` uses each mean entry's init std from the parametrization: the same
    marginal scale as IVI's prior, but centred at 0. IVI's prior is the initialisation
    itself, N(mu0, S0 S0^T) with a random mean mu0 and E[S0 S0^T] = init std^2 I (a low-rank
    factor makes it rank-deficient); it never enters IVI's loss. Deterministic layers are
    point estimates and add nothing.
    Needs 'diagonal' or 'full' covariances; a rank-deficient 'lowrank' KL is infinite.
    """
    total = None
    for layer in model.modules():
        if isinstance(layer, VariationalLinear) and layer.cov is not None:
            kl = layer.cov.kl_to_diagonal(_flat_mean(layer), _prior_var(layer, prior_std))
            total = kl if total is None else total + kl
    if total is None:
        raise ValueError("kl_divergence needs at least one stochastic layer; the model has none")
    return total


def negative_elbo(
    model: VariationalMLP,
    x: Tensor,
    y: Tensor,
    num_data: int,
    loss: str | Loss = Loss.GAUSSIAN,
    *,
    prior_std: float | None = None,
    mask: Tensor | None = None,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    noise_std: float = 1.0,
) -> Tensor:
    """Per-datum negative ELBO: E_q[NLL] averaged over the batch + KL(q || p) / num_data.

    With a mean-reduced NLL the KL weight must be 1/N for N = ``num_data`` training points
    (the reference implementation's default weight 1 makes the KL N times too strong).
    """
    kind = parse_enum(Loss, loss, "loss")
    if kind is Loss.MSE:
        raise ValueError("negative_elbo needs a likelihood: loss='gaussian' or 'cross_entropy'")
    check_positive_int(num_data, "num_data")
    nll = expected_loss(
        model,
        x,
        y,
        kind,
        mask=mask,
        num_samples=num_samples,
        generator=generator,
        noise_std=noise_std,
    )
    return nll + kl_divergence(model, prior_std) / num_data


def _flat_mean(layer: VariationalLinear) -> Tensor:
    parts = [layer.weight.reshape(-1)]
    if layer.bias is not None:
        parts.append(layer.bias)
    return torch.cat(parts)


def _prior_var(layer: VariationalLinear, prior_std: float | None) -> Tensor:
    if prior_std is not None and not prior_std > 0:
        raise ValueError(f"prior_std={prior_std!r} must be positive or None")
    w_std = prior_std or layer.init_std(ParamKind.WEIGHT)
    b_std = prior_std or layer.init_std(ParamKind.BIAS)
    kw = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    parts = [torch.full((layer.weight.numel(),), w_std**2, **kw)]
    if layer.bias is not None:
        parts.append(torch.full((layer.bias.numel(),), b_std**2, **kw))
    return torch.cat(parts)


def _check_target(pred: Tensor, target: Tensor, argument: str) -> None:
    if target.dim() == 0 or pred.shape[-target.dim() :] != target.shape:
        raise ValueError(
            f"{argument} has shape {tuple(target.shape)}; expected [*batch, out], the trailing "
            f"dimensions of the prediction, whose shape is {tuple(pred.shape)}"
        )


def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    if y.dtype not in (torch.int64, torch.int32) or logits.shape[-1 - y.dim() : -1] != y.shape:
        raise ValueError(
            f"y for cross_entropy must hold integer class indices of shape [*batch] matching "
            f"logits {tuple(logits.shape)}; got {tuple(y.shape)} {y.dtype}"
        )
    # Range check on CPU only: on cuda it would synchronise every step (gather asserts there).
    if y.device.type == "cpu" and y.numel() and (y.min() < 0 or y.max() >= logits.shape[-1]):
        raise ValueError(f"y holds classes outside [0, {logits.shape[-1] - 1}]")
    logp = F.log_softmax(logits, dim=-1)
    return -logp.gather(-1, y.expand(*logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)
