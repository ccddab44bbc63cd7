"""The stable step (ivi_rl.stability): the curvature it measures is the Gauss-Newton matrix's
top eigenvalue, its bound is SGD-with-momentum's, and capping a step leaves IVI's limit where
Theorem 1 puts it."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, jacrev

import ivi_rl
from ivi_rl import linear_ivi_limit, wasserstein2
from ivi_rl.stability import initial_vectors


def _dense_curvatures(model, x, outputs, noise, rates) -> list[float]:
    """Reference: per layer, the top eigenvalue of D^1/2 G D^1/2 with G = 2/M sum_m J_m^T J_m
    formed densely (J_m: the datum's output with respect to the layer's means, one row per
    datum and draw), D the learning rates of its entries."""
    params = dict(model.named_parameters())
    found = []
    for i, layer in enumerate(model.layers):
        names = [f"layers.{i}.weight"] + ([f"layers.{i}.bias"] if layer.bias is not None else [])

        def out(*means, names=names):
            values = functional_call(
                model, {**params, **dict(zip(names, means, strict=True))}, (x, noise)
            )
            return values.gather(-1, outputs.expand(values.shape[0], -1)[..., None])[..., 0]

        jac = jacrev(out, argnums=tuple(range(len(names))))(*(params[n] for n in names))
        rows = torch.cat([j.reshape(j.shape[0] * j.shape[1], -1) for j in jac], 1)
        weight_rate, bias_rate = rates[i]
        scale = [weight_rate] * layer.weight.numel() + [bias_rate] * (
            rows.shape[1] - layer.weight.numel()
        )
        rows = rows * torch.tensor(scale, dtype=rows.dtype).sqrt()
        gauss_newton = 2.0 / rows.shape[0] * rows.T @ rows
        found.append(torch.linalg.eigvalsh(gauss_newton)[-1].item())
    return found


@pytest.mark.parametrize(
    ("stochastic", "cov", "activation", "bias"),
    [
        ("input_output", "lowrank", "relu", True),
        ("all", "diagonal", "tanh", True),
        ("last", "full", "gelu", False),
    ],
)
def test_curvatures_are_the_gauss_newton_top_eigenvalues_in_the_rates_metric(
    stochastic, cov, activation, bias
):
    torch.manual_seed(0)
    model = ivi_rl.make_mlp(
        4,
        3,
        (5, 6),
        stochastic=stochastic,
        cov=cov,
        activation=activation,
        bias=bias,
        dtype=torch.float64,
    )
    opt = ivi_rl.make_optimizer(model, 0.01)
    rates = ivi_rl.layer_rates(model, opt.param_groups)
    x = torch.randn(30, 4, dtype=torch.float64)
    outputs = torch.randint(0, 3, (30,))
    noise = model.sample_noise((2,), torch.Generator().manual_seed(1))
    kappa, _ = ivi_rl.layer_curvatures(model, x, outputs, noise.tensors, rates, iterations=300)
    expected = _dense_curvatures(model, x, outputs, noise, rates)
    torch.testing.assert_close(
        kappa, torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_the_output_layer_is_measured_per_output_and_warm_starts_keep_the_estimate():
    """The output layer's operator has one block per output: the largest block wins even
    when a warm start comes from another block (here arm 0 dominates the first data, arm 2
    the second)."""
    torch.manual_seed(0)
    model = ivi_rl.make_mlp(4, 3, (8,), dtype=torch.float64)
    rates = ivi_rl.layer_rates(model, ivi_rl.make_optimizer(model, 0.01).param_groups)
    noise = model.sample_noise((1,), torch.Generator().manual_seed(1)).tensors
    x = torch.randn(40, 4, dtype=torch.float64)
    first = torch.tensor([0] * 36 + [1, 1, 2, 2])
    second = torch.tensor([2] * 36 + [0, 0, 1, 1])
    _, vectors = ivi_rl.layer_curvatures(model, x, first, noise, rates, iterations=100)
    cold, _ = ivi_rl.layer_curvatures(model, x, second, noise, rates, iterations=100)
    warm, _ = ivi_rl.layer_curvatures(model, x, second, noise, rates, vectors, iterations=5)
    dense = _dense_curvatures(
        model, x, second, model.sample_noise((1,), torch.Generator().manual_seed(1)), rates
    )
    assert cold[-1].item() == pytest.approx(dense[-1], rel=1e-9)
    assert warm[-1].item() == pytest.approx(dense[-1], rel=1e-6)


def test_start_vectors_are_fixed_and_shaped_like_each_layer_with_its_bias():
    model = ivi_rl.make_mlp(4, 3, (5,), bias=False)
    assert [tuple(v.shape) for v in initial_vectors(model)] == [(5, 4), (3, 5)]
    model = ivi_rl.make_mlp(4, 3, (5,))
    first, again = initial_vectors(model), initial_vectors(model)
    assert [tuple(v.shape) for v in first] == [(5, 5), (3, 6)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_step_scale_keeps_every_layer_within_its_momentum_bound():
    """The bounds times MARGIN = 0.8: 0.8 (1 - beta) for a layer with a covariance,
    0.8 * 2 (1 + beta) for a deterministic one."""
    kappa = torch.tensor([[0.05, 1.0, 0.02], [0.4, 1.0, 0.05], [0.0, 0.0, 0.0]])
    scale = ivi_rl.stable_step_scale(kappa, [True, False, True], momentum=0.9)
    # rows: nothing binds (exactly 1); the stochastic input layer binds (0.08 / 0.4);
    # zero curvature binds nothing
    torch.testing.assert_close(scale, torch.tensor([1.0, 0.2, 1.0]))
    deterministic = ivi_rl.stable_step_scale(torch.tensor([7.6]), [False], momentum=0.9)
    torch.testing.assert_close(deterministic, torch.tensor(0.4))  # 0.8 * 2 (1 + 0.9) / 7.6
    plain_sgd = ivi_rl.stable_step_scale(torch.tensor([4.0]), [True], momentum=0.0)
    torch.testing.assert_close(plain_sgd, torch.tensor(0.2))  # 0.8 (1 - 0) / 4


P, N = 50, 10


def _linear_fit(lr: float, momentum: float, stable: bool, steps: int = 12_000):
    """Theorem 1's setting (float64, full factor, full batch, one draw per step) with a
    VariationalMLP of one layer, optionally with the stable step (the curvature of a linear
    model does not depend on the parameters: measured once)."""
    torch.manual_seed(0)
    x = torch.randn(N, P, dtype=torch.float64)
    y = torch.randn(N, 1, dtype=torch.float64)
    model = ivi_rl.make_mlp(P, 1, (), cov="full", bias=False, dtype=torch.float64)
    model.reset_parameters(torch.Generator().manual_seed(1))
    prior = ivi_rl.layer_gaussian(model.layers[0])
    opt = ivi_rl.make_optimizer(model, lr, momentum=momentum)
    scale = 1.0
    if stable:
        rates = ivi_rl.layer_rates(model, opt.param_groups)
        noise = model.sample_noise((1,), torch.Generator().manual_seed(2)).tensors
        kappa, _ = ivi_rl.layer_curvatures(model, x, torch.zeros(N, dtype=torch.long), noise, rates)
        scale = ivi_rl.stable_step_scale(kappa, [True], momentum).item()
        ivi_rl.set_base_lr(opt, lr * scale)
    gen = torch.Generator().manual_seed(3)
    for _ in range(steps):
        loss = ivi_rl.expected_loss(model, x, y, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (
        x,
        prior,
        linear_ivi_limit(x, y[:, 0], prior),
        ivi_rl.layer_gaussian(model.layers[0]),
        scale,
    )


@pytest.mark.parametrize(("lr", "momentum"), [(0.5, 0.0), (0.05, 0.9)])
def test_a_capped_step_converges_to_the_theorems_limit_where_the_plain_step_diverges(lr, momentum):
    """Ten times the theorem test's step sizes: plain SGD diverges, the stable step caps it
    (kappa = 8.7 (1 - beta) there, so s = 0.8 / 8.7) and reaches the 2-Wasserstein projection
    of the prior as the uncapped theorem test does (1e-10)."""
    _, _, _, plain, _ = _linear_fit(lr, momentum, stable=False, steps=2000)
    assert not torch.isfinite(plain.factor).all() or plain.factor.abs().max() > 1e6
    _, prior, limit, q, scale = _linear_fit(lr, momentum, stable=True)
    assert 0.05 < scale < 0.2
    assert (q.mean - limit.mean).abs().max() < 1e-10
    assert (q.factor - limit.factor).abs().max() < 1e-10
    assert wasserstein2(q, limit) < 1e-6 and wasserstein2(prior, limit) > 0.5


def test_where_no_bound_binds_the_stable_step_changes_nothing():
    _, _, _, plain, _ = _linear_fit(0.02, 0.0, stable=False, steps=200)
    _, _, _, capped, scale = _linear_fit(0.02, 0.0, stable=True, steps=200)
    assert scale == 1.0
    assert torch.equal(plain.mean, capped.mean) and torch.equal(plain.factor, capped.factor)
