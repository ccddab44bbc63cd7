"""A step size that cannot diverge: SGD-with-momentum's stability bound, measured on the data.

IVI trains by SGD with momentum beta on a one-draw estimate of the expected loss, so the
curvature of every step is random: the minibatch and the weight draw z change it. Along a
covariance factor the randomness is large. A factor's learning rate is its mean's over R
(``Covariance.lr_factor``) while one step's curvature there is R times its expectation (the
rank-one z z^T with E||z||^2 = R), and the mean and the factor move together along the same
random direction. With kappa the top eigenvalue of a layer's Gauss-Newton matrix in the
metric of the group learning rates, the second moments of plain SGD (beta = 0) on this pair
contract exactly while kappa < 1, whatever R; heavy-ball momentum under random curvature
moves like SGD with the step eta / (1 - beta), which gives

    kappa < 1 - beta              for a layer with a covariance,
    kappa < 2 (1 + beta)          for a deterministic layer (heavy ball on a fixed quadratic).

Measured on Theorem 1's linear model (full factor, R = 50) the iteration stops converging at
kappa = 1.0, 1.15 and 1.25 times 1 - beta for beta = 0, 0.5 and 0.9; on a one-arm model of
an output bias and its factor at 1.0-1.1, 1.2-1.4 and 1.35-1.5 times 1 - beta. The rule
applies :data:`MARGIN` times these bounds: the curvature is estimated once per retrain from a
sample, and drifts while the retrain runs.

:func:`layer_curvatures` measures kappa for every layer of an MLP by power iteration on its
exact Gauss-Newton block, on data and weight draws the caller gives; :func:`stable_step_scale`
turns the curvatures into one factor s <= 1 for every learning rate. One factor for all
groups keeps the ratios of the per-group rates, the metric in which IVI's limit is the
2-Wasserstein projection of the prior; and gradient descent's limit does not depend on the
step size while the iteration converges, so a capped run is still IVI. Where no bound binds,
s is exactly 1 and training is unchanged bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .linear import VariationalLinear

__all__ = ["initial_vectors", "layer_curvatures", "layer_rates", "stable_step_scale"]

POWER_ITERATIONS = 20
"""Power iterations of a first call; later calls pass the previous top vectors back in."""
MARGIN = 0.8
"""The fraction of each stability bound the rule allows (module docstring)."""


def layer_rates(model: nn.Module, param_groups: Sequence[dict]) -> list[tuple[float, float | None]]:
    """(weight rate, bias rate or None) of the means of every layer of ``model.layers``,
    read from optimizer parameter groups that carry ``names`` (as :func:`ivi_rl.param_groups`
    builds them; a name may carry a prefix, e.g. ``model.``); 0 for a parameter in no group."""
    rate = {}
    for group in param_groups:
        for name in group["names"]:
            rate[name.split("layers.", 1)[-1]] = float(group["lr"])
    rates = []
    for i, layer in enumerate(model.layers):  # a parameter in no group (frozen) has rate 0
        bias = rate.get(f"{i}.bias", 0.0) if layer.bias is not None else None
        rates.append((rate.get(f"{i}.weight", 0.0), bias))
    return rates


def layer_curvatures(
    model: nn.Module,
    x: Tensor,
    outputs: Tensor,
    noise: Sequence[Tensor],
    rates: Sequence[tuple[float, float | None]],
    vectors: Sequence[Tensor] | None = None,
    iterations: int = POWER_ITERATIONS,
) -> tuple[Tensor, list[Tensor]]:
    """Top eigenvalue kappa of every layer's Gauss-Newton block of the squared loss
    ``mean_n (f(x_n)[outputs_n] - y_n)^2`` (one output per datum: a bandit's pulled arm, a
    Q-network's action), in the metric of the learning rates, averaged over weight draws.

    Args:
        model: an MLP of :class:`VariationalLinear` layers with an elementwise ``act``
            between them (:class:`ivi_rl.VariationalMLP`).
        x: inputs [N, in_features] as training sees them.
        outputs: [N] the output each datum's loss is on.
        noise: one tensor [K, noise_dim] per stochastic layer: K draws to average over.
        rates: (weight rate, bias rate) of every layer's means (:func:`layer_rates`).
        vectors: top vectors of an earlier call, else None. A warm start adds them to the
            fixed start, which keeps every direction in play (the output layer's blocks
            are separate per output: a vector inside one arm's block never leaves it).
        iterations: power iterations.

    Returns:
        kappa [num_layers] and the top vectors to pass back next time. Power iteration
        approaches kappa from below; warm starts carry it across calls.
    """
    inputs, backward = _forward(model, x, outputs, noise)
    starts = initial_vectors(model, x.dtype)
    kappas, found = [], []
    last = len(rates) - 1
    for i, (weight_rate, bias_rate) in enumerate(rates):
        features = _scaled_inputs(inputs[i], weight_rate, bias_rate)
        start = starts[i] if vectors is None else _unit(vectors[i]) + _unit(starts[i])
        kappa, vector = _power_iteration(
            backward[i], features, start, iterations, per_output=i == last
        )
        kappas.append(kappa)
        found.append(vector)
    return torch.stack(kappas), found


def initial_vectors(model: nn.Module, dtype: torch.dtype | None = None) -> list[Tensor]:
    """Fixed start vectors [out, in (+1 with a bias)] of the power iterations, one per layer:
    a quasi-random pattern no data set is orthogonal to by construction."""
    starts = []
    for layer in model.layers:
        rows, cols = layer.out_features, layer.in_features + (layer.bias is not None)
        index = torch.arange(
            rows * cols, device=layer.weight.device, dtype=dtype or layer.weight.dtype
        )
        starts.append(torch.sin(index * 0.7548776662466927 + 0.5).view(rows, cols))
    return starts


def stable_step_scale(curvatures: Tensor, stochastic: Sequence[bool], momentum: float) -> Tensor:
    """The largest factor s <= 1 for every learning rate with s kappa_l within :data:`MARGIN`
    times its layer's bound (module docstring): 1 - momentum for a layer with a covariance,
    2 (1 + momentum) for a deterministic one. ``curvatures`` [..., L] -> s [...]; exactly 1
    where no bound binds."""
    beta = float(momentum)
    flags = torch.tensor(list(stochastic), device=curvatures.device)
    bound = MARGIN * torch.where(flags, 1.0 - beta, 2.0 * (1.0 + beta)).to(curvatures.dtype)
    room = torch.where(curvatures > 0, bound / curvatures, torch.full_like(curvatures, torch.inf))
    return room.amin(-1).clamp(max=1.0)


def _forward(
    model: nn.Module, x: Tensor, outputs: Tensor, noise: Sequence[Tensor]
) -> tuple[list[Tensor], list[Tensor]]:
    """Every layer's input [K, N, in] and the gradient of each datum's output with respect
    to the layer's pre-activation [K, N, out], under the K draws ``noise``."""
    draws = noise[0].shape[0] if noise else 1
    zs = iter(noise)
    h = x.expand(draws, *x.shape)
    inputs, pre_acts, weights = [], [], []
    for i, layer in enumerate(model.layers):
        if i:
            h = model.act(h)
        inputs.append(h)
        weight, bias = _weights(layer, next(zs) if layer.is_stochastic else None, draws)
        weights.append(weight)
        h = torch.matmul(h, weight.transpose(-1, -2))
        if bias is not None:
            h = h + bias.unsqueeze(-2)
        pre_acts.append(h)
    grad = nn.functional.one_hot(outputs, h.shape[-1]).to(h.dtype).expand_as(h)
    backward = [grad]
    for i in range(len(model.layers) - 1, 0, -1):
        _, pull_back = torch.func.vjp(model.act, pre_acts[i - 1])  # elementwise: a slope
        (grad,) = pull_back(torch.matmul(grad, weights[i]))
        backward.append(grad)
    return inputs, backward[::-1]


def _weights(layer: VariationalLinear, z: Tensor | None, draws: int):
    if z is None:
        bias = None if layer.bias is None else layer.bias.expand(draws, -1)
        return layer.weight.expand(draws, -1, -1), bias
    return layer.cov.sample(layer.weight, layer.bias, z)


def _scaled_inputs(h: Tensor, weight_rate: float, bias_rate: float | None) -> Tensor:
    """[K * N, in (+1)]: inputs times sqrt(weight rate), then sqrt(bias rate) for the bias."""
    flat = h.reshape(-1, h.shape[-1]) * weight_rate**0.5
    if bias_rate is None:
        return flat
    return torch.cat([flat, flat.new_full((flat.shape[0], 1), bias_rate**0.5)], 1)


def _power_iteration(
    grads: Tensor, features: Tensor, vector: Tensor, iterations: int, per_output: bool
) -> tuple[Tensor, Tensor]:
    """Top eigenvalue of V -> 2 / M sum_m (g_m^T V f_m) g_m f_m^T over the M = K * N rows.

    ``per_output``: the output layer, whose gradients g_m are unit vectors (the datum's
    output), so the operator is block-diagonal with one block per output (row of V): each
    row runs its own power iteration and the largest of their eigenvalues is returned."""
    g = grads.reshape(-1, grads.shape[-1])
    scale = 2.0 / g.shape[0]
    unit = _unit_rows if per_output else _unit
    kappa = vector.new_zeros(())
    for _ in range(iterations):
        vector = unit(vector)
        along = ((g @ vector) * features).sum(-1, keepdim=True)
        image = (g * along).transpose(0, 1) @ features * scale
        quotients = (image * vector).sum(-1)
        kappa = quotients.amax() if per_output else quotients.sum()
        vector = image
    return kappa, vector


def _unit(vector: Tensor) -> Tensor:
    return vector / torch.linalg.vector_norm(vector).clamp_min(torch.finfo(vector.dtype).tiny)


def _unit_rows(vectors: Tensor) -> Tensor:
    norms = torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
    return vectors / norms.clamp_min(torch.finfo(vectors.dtype).tiny)
