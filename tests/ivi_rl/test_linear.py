import pytest
import torch
from torch import nn

from ivi_rl import VariationalLinear
from ivi_rl.enums import ParamKind

FAMILIES = [("diagonal", None), ("lowrank", 3), ("full", None)]


def test_cov_none_equals_nn_linear_outputs_grads_and_state_dict():
    ref = nn.Linear(7, 4)
    layer = VariationalLinear(7, 4, cov=None)
    assert [n for n, _ in layer.named_parameters()] == [n for n, _ in ref.named_parameters()]
    layer.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(3, 5, 7)
    out, expected = layer(x), ref(x)
    assert torch.equal(out, expected)
    out.square().sum().backward()
    expected.square().sum().backward()
    assert torch.equal(layer.weight.grad, ref.weight.grad)
    assert torch.equal(layer.bias.grad, ref.bias.grad)
    # sampling a deterministic layer returns the same values with a leading sample dim
    sampled = layer(x, sample_shape=(2,))
    assert sampled.shape == (2, 3, 5, 4)
    assert torch.equal(sampled[1], expected.detach())
    ref_nobias = nn.Linear(7, 4, bias=False)
    layer_nobias = VariationalLinear(7, 4, bias=False)
    layer_nobias.load_state_dict(ref_nobias.state_dict(), strict=True)
    assert torch.equal(layer_nobias(x), ref_nobias(x))


@pytest.mark.parametrize(("cov", "rank"), FAMILIES)
@pytest.mark.parametrize("sample_shape", [(), (5,), (2, 3)])
def test_output_shapes_over_sample_and_batch(cov, rank, sample_shape):
    layer = VariationalLinear(6, 4, cov=cov, rank=rank)
    x = torch.randn(3, 2, 6)
    assert layer(x, sample_shape=sample_shape).shape == (*sample_shape, 3, 2, 4)
    assert layer(torch.randn(6), sample_shape=sample_shape).shape == (*sample_shape, 4)


@pytest.mark.parametrize(("cov", "rank"), FAMILIES)
def test_same_generator_seed_gives_identical_outputs(cov, rank):
    layer = VariationalLinear(6, 4, cov=cov, rank=rank)
    x = torch.randn(8, 6)
    outs = [
        layer(x, sample_shape=(3,), generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)
    ]
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


@pytest.mark.parametrize(("cov", "rank"), FAMILIES)
def test_sampled_parameters_are_mean_plus_dense_factor_times_z(cov, rank):
    """S z computed by the layer equals the dense factor's columns, so the covariance the
    layer samples from is exactly factor() @ factor().T."""
    layer = VariationalLinear(5, 3, cov=cov, rank=rank, dtype=torch.float64)
    dense = layer.cov.factor()
    for r in range(layer.noise_dim):
        z = torch.zeros(layer.noise_dim, dtype=torch.float64)
        z[r] = 1.0
        w, b = layer.sampled_parameters(z)
        delta = torch.cat([(w - layer.weight).reshape(-1), b - layer.bias])
        torch.testing.assert_close(delta, dense[:, r], rtol=0, atol=1e-15)
    assert torch.allclose(layer.cov.variances(), torch.diag(layer.cov.dense()))


@pytest.mark.parametrize(("cov", "rank"), FAMILIES)
def test_k_draws_in_one_call_equal_each_draw_alone(cov, rank):
    layer = VariationalLinear(6, 4, cov=cov, rank=rank)
    x = torch.randn(10, 6)
    z = layer.sample_noise((7,), torch.Generator().manual_seed(0))
    together = layer(x, z)
    for k in range(7):
        w, b = layer.sampled_parameters(z[k])
        torch.testing.assert_close(together[k], x @ w.T + b, rtol=1e-6, atol=1e-6)
    # one input batch per draw (e.g. one observation per environment)
    xs = torch.randn(7, 2, 6)
    per_draw = layer(xs, z, x_has_sample_dims=True)
    for k in range(7):
        torch.testing.assert_close(per_draw[k], layer(xs[k], z[k]), rtol=1e-6, atol=1e-6)


def test_sampling_does_not_depend_on_training_mode():
    layer = VariationalLinear(6, 4, cov="lowrank", rank=2)
    x = torch.randn(5, 6)
    train = layer.train()(x, generator=torch.Generator().manual_seed(3))
    evaluated = layer.eval()(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(train, evaluated)
    assert not torch.allclose(evaluated, layer.forward_mean(x))


def test_diagonal_scale_starts_at_the_init_std_exactly():
    layer = VariationalLinear(40, 30, cov="diagonal", layer_kind="output")
    assert torch.equal(layer.cov.weight_scale, torch.full((30, 40), 1 / 40))
    assert torch.equal(layer.cov.bias_scale, torch.ones(30))


def test_factor_init_std_is_mean_std_over_sqrt_rank():
    rank = 16
    layer = VariationalLinear(256, 256, cov="lowrank", rank=rank)
    sigma = layer.init_std(ParamKind.WEIGHT)
    std = layer.cov.weight_factor.std().item()
    # 16 * 65536 entries: the sample std's relative s.e. is 1/sqrt(2n) ~ 7e-4; allow 1%.
    assert std == pytest.approx(sigma / rank**0.5, rel=0.01)
    # so the prior marginal variance averages sigma^2
    assert layer.cov.variances()[: 256 * 256].mean().item() == pytest.approx(sigma**2, rel=0.01)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"cov": "dense"},
            ValueError,
            "cov='dense' is not accepted; accepted: diagonal, lowrank, full$",
        ),
        ({"cov": 3}, ValueError, "cov=3 is not accepted; accepted: diagonal, lowrank, full$"),
        ({"cov": "lowrank"}, ValueError, "needs rank=R"),
        ({"cov": "lowrank", "rank": 0}, ValueError, r"rank=0 is outside \[1, P=15\]"),
        ({"cov": "lowrank", "rank": 16}, ValueError, r"rank=16 is outside \[1, P=15\]"),
        ({"cov": "lowrank", "rank": 2.5}, TypeError, "rank=2.5 must be an int"),
        ({"cov": "diagonal", "rank": 2}, ValueError, "rank=2 only applies to cov='lowrank'"),
        ({"cov": None, "rank": 2}, ValueError, "rank=2 needs cov='lowrank'"),
        (
            {"layer_kind": "middle"},
            ValueError,
            "layer_kind='middle' is not accepted; accepted: input, hidden, output$",
        ),
        (
            {"parametrization": "ntk"},
            ValueError,
            "parametrization='ntk' is not accepted; accepted: mup, sp$",
        ),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        VariationalLinear(4, 3, **kwargs)


def test_bad_inputs_name_the_argument():
    layer = VariationalLinear(4, 3, cov="lowrank", rank=2)
    with pytest.raises(ValueError, match=r"x has shape \(5, 3\).*in_features=4"):
        layer(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"z has shape \(3,\); expected \[\*sample_shape, 2\]"):
        layer(torch.randn(5, 4), torch.randn(3))
    with pytest.raises(ValueError, match=r"x is on device meta.*parameters are on cpu"):
        layer(torch.randn(5, 4, device="meta"))
    with pytest.raises(TypeError, match=r"x has dtype torch.float64"):
        layer(torch.randn(5, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"sample_shape=.*positive ints"):
        layer(torch.randn(5, 4), sample_shape=(0,))
    with pytest.raises(TypeError, match=r"generator=.*torch.Generator"):
        layer(torch.randn(5, 4), generator=7)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("cov", "rank"), FAMILIES)
def test_output_variance_is_the_dense_covariance_seen_through_the_input(cov, rank, bias):
    """Var(x W^T + b)_o = a_o^T Sigma a_o with a_o the output's coefficients on theta =
    [vec(W) row-major, b]: x in row o of W, 1 at bias o. Exact, no sampling."""
    torch.manual_seed(0)
    layer = VariationalLinear(5, 3, cov=cov, rank=rank, bias=bias)
    with torch.no_grad():  # not the init values: every entry differs
        for p in layer.cov.parameters():
            p.normal_()
    x = torch.randn(4, 5)
    mean, var = layer.mean_and_variance(x)
    sigma = layer.cov.dense()
    for o in range(3):
        a = torch.zeros(4, sigma.shape[0])
        a[:, o * 5 : (o + 1) * 5] = x
        if bias:
            a[:, 15 + o] = 1.0
        torch.testing.assert_close(var[:, o], torch.einsum("bp,pq,bq->b", a, sigma, a))
    torch.testing.assert_close(mean, layer.forward_mean(x))


def test_a_deterministic_layer_has_zero_output_variance():
    layer = VariationalLinear(5, 3, cov=None)
    x = torch.randn(2, 5)
    mean, var = layer.mean_and_variance(x)
    assert torch.equal(var, torch.zeros(2, 3))
    assert torch.equal(mean, layer(x))
    with pytest.raises(ValueError, match=r"x has shape \(2, 4\); expected a last dimension of"):
        layer.mean_and_variance(torch.randn(2, 4))
