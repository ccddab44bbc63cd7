"""Theorem 1 of Wenger et al. beyond its base case (tests/ivi_rl/test_theorem.py): muP's
per-group learning rates, minibatch SGD, the low-rank family, and the diagonal family's
different limit. Linear model, float64, one weight sample per step.

With per-parameter learning rates D (muP: an output layer's weights get 1/fan_in, its bias
fan_out), gradient descent is plain descent in v = D^-1/2 w, so the limit is the theorem's
in those coordinates: mu* = mu0 + D X^T (X D X^T)^-1 (y - X mu0) and S* = (I - D X^T
(X D X^T)^-1 X) S0, the projection of the prior onto the data's solutions in the D^-1 metric
(the Euclidean one when every parameter has the same rate).
"""

import pytest
import torch

import ivi_rl

F64 = torch.float64


def _data(n, p, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, p, dtype=F64, generator=g), torch.randn(n, dtype=F64, generator=g)


def _fit(layer, x, y, *, lr, steps, momentum=0.0, batch=None, on_step=None):
    gen = torch.Generator().manual_seed(1)
    opt = ivi_rl.make_optimizer(layer, lr, momentum=momentum)
    n = x.shape[0]
    for step in range(steps):
        rows = torch.arange(n) if batch is None else torch.randperm(n, generator=gen)[:batch]
        z = layer.sample_noise(generator=gen)
        loss = (layer(x[rows], z)[:, 0] - y[rows]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step)
    return ivi_rl.layer_gaussian(layer)


def _preconditioned_limit(xb, y, prior, d):
    """The limit of gradient descent with per-parameter rates d on y = xb w."""
    gram = xb @ (d[:, None] * xb.T)
    proj = d[:, None] * xb.T @ torch.linalg.solve(gram, torch.eye(len(y), dtype=F64))
    mean = prior.mean + proj @ (y - xb @ prior.mean)
    return ivi_rl.Gaussian(mean, prior.factor - proj @ (xb @ prior.factor))


def test_mup_output_layer_with_bias_converges_to_the_preconditioned_projection():
    """Output layer, 12 inputs + bias (P = 13), N = 5: muP gives the weights rate 1/12 and
    the bias rate 1 (the factor's rows the same, times 1/R). Measured: errors 1e-13 after
    20,000 steps at lr 0.3; asserted 1e-9. Control: the Euclidean projection (what the
    theorem gives with equal rates) is not the limit."""
    x, y = _data(5, 12)
    layer = ivi_rl.VariationalLinear(12, 1, cov="full", layer_kind="output", dtype=F64)
    prior = ivi_rl.layer_gaussian(layer)
    q = _fit(layer, x, y, lr=0.3, steps=20_000)
    xb = torch.cat([x, torch.ones(5, 1, dtype=F64)], 1)
    d = torch.tensor([1 / 12] * 12 + [1.0], dtype=F64)
    limit = _preconditioned_limit(xb, y, prior, d)
    assert (q.mean - limit.mean).abs().max() < 1e-9
    assert (q.factor - limit.factor).abs().max() < 1e-9
    assert (xb @ q.factor).abs().max() < 1e-9
    euclidean = ivi_rl.linear_ivi_limit(xb, y, prior)
    assert (q.mean - euclidean.mean).abs().max() > 1e-2


def test_minibatch_sgd_keeps_the_null_space_and_converges():
    """P = 50, N = 10, batches of 4 with momentum: every minibatch gradient lies in the row
    space of X, so the null-space parts of mean and factor stay at the prior at every step
    (asserted 1e-12); the data are interpolated, so the gradient noise vanishes at the limit
    and the iterates converge (measured 3e-9 after 15,000 steps at lr 0.002; asserted 1e-7)."""
    x, y = _data(10, 50)
    layer = ivi_rl.VariationalLinear(50, 1, bias=False, cov="full", dtype=F64)
    prior = ivi_rl.layer_gaussian(layer)
    null = torch.eye(50, dtype=F64) - torch.linalg.pinv(x) @ x
    drift = [0.0]

    def track(step):
        if step % 50 == 0:
            q = ivi_rl.layer_gaussian(layer)
            drift[0] = max(
                drift[0],
                (null @ (q.mean - prior.mean)).abs().max().item(),
                (null @ (q.factor - prior.factor)).abs().max().item(),
            )

    q = _fit(layer, x, y, lr=0.002, momentum=0.9, steps=15_000, batch=4, on_step=track)
    limit = ivi_rl.linear_ivi_limit(x, y, prior)
    assert drift[0] < 1e-12
    assert (q.mean - limit.mean).abs().max() < 1e-7
    assert (q.factor - limit.factor).abs().max() < 1e-7


def test_lowrank_family_converges_to_the_projection_of_its_prior():
    """Rank 5 of P = 50: the limit projects the rank-5 prior factor; asserted 1e-10."""
    x, y = _data(10, 50)
    layer = ivi_rl.VariationalLinear(50, 1, bias=False, cov="lowrank", rank=5, dtype=F64)
    prior = ivi_rl.layer_gaussian(layer)
    q = _fit(layer, x, y, lr=0.05, steps=12_000)
    limit = ivi_rl.linear_ivi_limit(x, y, prior)
    assert (q.mean - limit.mean).abs().max() < 1e-10
    assert (q.factor - limit.factor).abs().max() < 1e-10


def test_diagonal_family_loses_the_prior_variance_off_the_data():
    """The mean-field family cannot hold P_null S0: every scale whose feature column is
    non-zero goes to 0, null space or not. The mean still reaches the theorem's mean, but no
    variance is left anywhere, while the full factor's limit keeps on average 1/5 of the
    prior variance (rank P - N of P) off the data."""
    x, y = _data(10, 50)
    layer = ivi_rl.VariationalLinear(50, 1, bias=False, cov="diagonal", dtype=F64)
    prior = ivi_rl.layer_gaussian(layer)
    q = _fit(layer, x, y, lr=0.05, steps=12_000)
    limit = ivi_rl.linear_ivi_limit(x, y, prior)
    assert (q.mean - limit.mean).abs().max() < 1e-10
    assert q.factor.pow(2).sum(1).max() < 1e-20
    kept = limit.cov.diagonal().mean() / prior.cov.diagonal().mean()
    assert kept == pytest.approx(0.8, abs=0.05)
