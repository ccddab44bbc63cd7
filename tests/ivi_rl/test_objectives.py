import math

import pytest
import torch
import torch.nn.functional as F

from ivi_rl import ParamKind, expected_loss, kl_divergence, make_mlp, negative_elbo, per_datum_loss


def test_expected_mse_with_given_noise_is_the_plain_loss_of_that_draw():
    model = make_mlp(4, 3, (8,))
    x, y = torch.randn(6, 4), torch.randn(6, 3)
    noise = model.sample_noise(seed=0)
    manual = (model(x, noise) - y).pow(2).sum(-1).mean()
    torch.testing.assert_close(expected_loss(model, x, y, noise=noise), manual)


def test_masked_mse_trains_only_the_pulled_arm():
    model = make_mlp(4, 3, (8,))
    x, y = torch.randn(6, 4), torch.randn(6, 3)
    arms = torch.tensor([0, 2, 0, 2, 2, 0])
    mask = F.one_hot(arms, 3).bool()
    noise = model.sample_noise(seed=1)
    loss = expected_loss(model, x, y, mask=mask, noise=noise)
    pred = model(x, noise)
    manual = (pred.gather(1, arms[:, None]) - y.gather(1, arms[:, None])).pow(2).mean()
    torch.testing.assert_close(loss, manual)
    loss.backward()
    out = model.layers[-1]
    assert torch.all(out.weight.grad[1] == 0) and out.bias.grad[1] == 0  # arm 1 never pulled
    assert out.weight.grad[0].abs().sum() > 0 and out.bias.grad[0] != 0


def test_num_samples_averages_independent_draws():
    model = make_mlp(4, 2, (8,))
    x, y = torch.randn(6, 4), torch.randn(6, 2)
    loss = expected_loss(model, x, y, num_samples=5, generator=torch.Generator().manual_seed(2))
    noise = model.sample_noise((5,), torch.Generator().manual_seed(2))
    manual = torch.stack([(model(x, noise[k]) - y).pow(2).sum(-1).mean() for k in range(5)]).mean()
    torch.testing.assert_close(loss, manual)


def test_cross_entropy_matches_torch():
    model = make_mlp(4, 5, (8,), stochastic="none")
    x, y = torch.randn(6, 4), torch.randint(0, 5, (6,))
    torch.testing.assert_close(
        expected_loss(model, x, y, "cross_entropy"), F.cross_entropy(model(x), y)
    )
    with pytest.raises(ValueError, match=r"integer class indices"):
        expected_loss(model, x, y.float(), "cross_entropy")
    with pytest.raises(ValueError, match=r"classes outside \[0, 4\]"):
        expected_loss(model, x, y + 5, "cross_entropy")


def test_gaussian_nll_is_the_normal_log_density():
    model = make_mlp(4, 2, (8,), stochastic="none")
    x, y = torch.randn(6, 4), torch.randn(6, 2)
    nll = per_datum_loss(model(x), y, "gaussian", noise_std=0.3)
    manual = -torch.distributions.Normal(model(x), 0.3).log_prob(y).sum(-1)
    torch.testing.assert_close(nll, manual)


def test_kl_diagonal_matches_the_closed_form():
    model = make_mlp(3, 2, (5,), stochastic="all", cov="diagonal", dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.3)
    total = 0.0
    for layer in model.layers:
        for mean, scale, prior in (
            (layer.weight, layer.cov.weight_scale, 0.5),
            (layer.bias, layer.cov.bias_scale, 0.5),
        ):
            q = torch.distributions.Normal(mean, scale.abs())
            p = torch.distributions.Normal(torch.zeros_like(mean), prior)
            total = total + torch.distributions.kl_divergence(q, p).sum()
    torch.testing.assert_close(kl_divergence(model, prior_std=0.5), total)


def test_kl_full_matches_torch_multivariate_normal():
    model = make_mlp(2, 1, (3,), stochastic="all", cov="full", dtype=torch.float64)
    total = 0.0
    for layer in model.layers:
        mean = torch.cat([layer.weight.reshape(-1), layer.bias])
        cov = layer.cov.dense()
        w_var = layer.init_std(ParamKind.WEIGHT) ** 2
        prior_var = torch.cat(
            [torch.full((layer.weight.numel(),), w_var), torch.ones(layer.bias.numel())]
        ).double()
        q = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
        p = torch.distributions.MultivariateNormal(torch.zeros_like(mean), torch.diag(prior_var))
        total = total + torch.distributions.kl_divergence(q, p)
    torch.testing.assert_close(kl_divergence(model), total)


def test_kl_of_a_rank_deficient_factor_is_refused():
    model = make_mlp(3, 2, (5,))  # lowrank, rank 10 < P
    with pytest.raises(ValueError, match=r"KL.*infinite for a lowrank covariance of rank 10"):
        kl_divergence(model)
    with pytest.raises(ValueError, match=r"at least one stochastic layer"):
        kl_divergence(make_mlp(3, 2, (5,), stochastic="none"))


def test_negative_elbo_weights_the_kl_by_one_over_n():
    model = make_mlp(3, 2, (5,), stochastic="all", cov="diagonal", dtype=torch.float64)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    noise = model.sample_noise(seed=4)
    gen = torch.Generator().manual_seed(4)
    value = negative_elbo(model, x, y, num_data=1000, noise_std=0.1, generator=gen)
    nll = per_datum_loss(model(x, noise), y, "gaussian", noise_std=0.1).mean()
    torch.testing.assert_close(value, nll + kl_divergence(model) / 1000)
    with pytest.raises(ValueError, match=r"needs a likelihood"):
        negative_elbo(model, x, y, num_data=10, loss="mse")
    with pytest.raises(ValueError, match=r"num_data=0 must be an int >= 1"):
        negative_elbo(model, x, y, num_data=0)


def test_shape_errors_name_the_argument():
    model = make_mlp(4, 3, (8,))
    x = torch.randn(6, 4)
    with pytest.raises(ValueError, match=r"y has shape \(6,\); expected \[\*batch, out\]"):
        expected_loss(model, x, torch.randn(6))
    with pytest.raises(ValueError, match=r"mask has shape \(6, 2\)"):
        expected_loss(model, x, torch.randn(6, 3), mask=torch.ones(6, 2))
    with pytest.raises(ValueError, match=r"loss='huber'.*mse, gaussian, cross_entropy"):
        expected_loss(model, x, torch.randn(6, 3), "huber")
    assert math.isfinite(expected_loss(model, x, torch.randn(6, 3)).item())


def test_a_diagonal_scale_at_zero_gives_a_finite_kl_and_positive_scales_are_untouched():
    """A Bayes-by-Backprop step can land a scale on exactly 0; log det then floors each s^2
    at the smallest normal float instead of going to -inf. Above the floor it is the plain
    sum of log s^2, bit for bit."""
    cov = make_mlp(3, 2, hidden=(), stochastic="last", cov="diagonal").layers[0].cov
    assert torch.equal(cov.log_det(), cov.variances().log().sum())
    before = cov.log_det()
    with torch.no_grad():
        cov.weight_scale[0, 0] = 0.0
    assert torch.isfinite(cov.log_det()) and cov.log_det() < before - 80  # log(tiny) ~ -87
