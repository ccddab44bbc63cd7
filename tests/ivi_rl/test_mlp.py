from unittest import mock

import pytest
import torch
from torch import nn

from ivi_rl import DEFAULT_RANK, Noise, VariationalLinear, make_mlp


@pytest.mark.parametrize(
    ("stochastic", "cov", "expected"),
    [
        ("input_output", "auto", ["lowrank", None, "lowrank"]),
        ("last", "auto", [None, None, "lowrank"]),
        ("all", "auto", ["diagonal", "diagonal", "diagonal"]),
        ("all", "full", ["full", "full", "full"]),
        ("none", "auto", [None, None, None]),
        ("none", None, [None, None, None]),
        ("input_output", "diagonal", ["diagonal", None, "diagonal"]),
    ],
)
def test_factory_dispatch(stochastic, cov, expected):
    model = make_mlp(3, 2, (6, 5), stochastic=stochastic, cov=cov)
    got = [None if layer.cov is None else layer.cov.family.value for layer in model.layers]
    assert got == expected
    assert [layer.layer_kind.value for layer in model.layers] == ["input", "hidden", "output"]


def test_an_explicit_rank_is_capped_by_small_layers_too():
    model = make_mlp(3, 2, (4,), rank=10**6)
    assert [layer.cov.rank for layer in model.stochastic_layers] == [16, 10]


def test_default_rank_is_capped_by_small_layers():
    model = make_mlp(1, 1, (2,))  # input layer has P = 2*1 + 2 = 4 parameters
    assert model.layers[0].cov.rank == 4
    assert model.layers[1].cov.rank == 3
    assert make_mlp(10, 2, (50,)).layers[0].cov.rank == DEFAULT_RANK


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"stochastic": "first"},
            ValueError,
            "stochastic='first' is not accepted; accepted: input_output, last, all, none$",
        ),
        (
            {"cov": None},
            ValueError,
            "cov=None makes every layer deterministic, but stochastic='input_output'",
        ),
        (
            {"stochastic": "none", "cov": "diagonal"},
            ValueError,
            "stochastic='none' builds a deterministic",
        ),
        ({"cov": "diagonal", "rank": 3}, ValueError, "rank=3 only applies to cov='lowrank'"),
        ({"rank": 0}, ValueError, r"rank=0 is outside \[1, P="),
        ({"activation": "sigmoidish"}, ValueError, "activation='sigmoidish'"),
        ({"hidden": (10, 0)}, ValueError, "hidden=.*positive ints"),
        ({"hidden": 10}, ValueError, "hidden=10 must be a sequence"),
    ],
)
def test_factory_bad_combinations(kwargs, error, match):
    hidden = kwargs.pop("hidden", (8, 8))
    with pytest.raises(error, match=match):
        make_mlp(4, 2, hidden, **kwargs)


def test_held_draw_is_identical_across_calls_and_batch_splits():
    model = make_mlp(6, 3, (32, 32), dtype=torch.float64)
    draw = model.draw(seed=11)
    x = torch.randn(64, 6, dtype=torch.float64)
    full = draw(x)
    assert torch.equal(full, draw(x))
    model(x)  # unrelated fresh draws in between must not disturb the held one
    assert torch.equal(full, draw(x))
    split = torch.cat([draw(x[:1]), draw(x[1:17]), draw(x[17:])])
    # Different batch sizes may take different BLAS blocking, so rows can differ in the last
    # bits; float64 keeps that below 1e-12.
    torch.testing.assert_close(split, full, rtol=0, atol=1e-12)
    assert not torch.allclose(full, model.draw(seed=12)(x))
    assert torch.equal(full, model.draw(seed=11)(x))


def test_k_draws_in_one_vectorized_call():
    model = make_mlp(6, 3, (16, 16))
    noise = model.sample_noise((9,), seed=0)
    x = torch.randn(20, 6)
    calls = []
    evaluate = VariationalLinear._forward_sampled

    def counted(layer, *args):
        calls.append(layer)
        return evaluate(layer, *args)

    with mock.patch.object(VariationalLinear, "_forward_sampled", counted):
        out = model(x, noise)
    assert out.shape == (9, 20, 3)
    assert calls == model.stochastic_layers  # each runs once for all 9 draws
    for k in range(9):
        torch.testing.assert_close(out[k], model(x, noise[k]), rtol=1e-5, atol=1e-6)
    assert Noise.stack([noise[k] for k in range(9)]).sample_shape == (9,)


def test_one_input_per_draw():
    """E.g. one observation per environment, each env holding its own draw."""
    model = make_mlp(4, 2, (8, 8))
    noise = model.sample_noise((3,), seed=1)
    obs = torch.randn(3, 5, 4)
    out = model(obs, noise, x_has_sample_dims=True)
    assert out.shape == (3, 5, 2)
    for k in range(3):
        torch.testing.assert_close(out[k], model(obs[k], noise[k]), rtol=1e-5, atol=1e-6)


def test_posterior_mean_and_deterministic_model():
    model = make_mlp(4, 2, (8, 8))
    x = torch.randn(5, 4)
    zero = Noise(tuple(torch.zeros_like(t) for t in model.sample_noise().tensors), torch.Size())
    torch.testing.assert_close(model.posterior_mean(x), model(x, zero))
    det = make_mlp(4, 2, (8, 8), stochastic="none")
    ref = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    # same parameter order, so the state dicts map one to one
    ref.load_state_dict(dict(zip(ref.state_dict(), det.state_dict().values(), strict=True)))
    assert torch.equal(det(x), ref(x))
    assert torch.equal(det(x, sample_shape=(3,))[2], ref(x))


def test_predictive_spread_matches_the_analytic_last_layer_variance():
    """With only the last layer stochastic, output o has variance h~^T Sigma_o h~ exactly
    (h~ = [features, 1]); 4000 draws estimate it with relative s.e. sqrt(2/4000) ~ 2.2%."""
    torch.manual_seed(3)
    model = make_mlp(3, 2, (16,), stochastic="last", cov="lowrank", rank=4, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    pred = model.predictive(x, num_samples=4000, generator=torch.Generator().manual_seed(0))
    features = torch.relu(model.layers[0](x))
    h = torch.cat([features, torch.ones(5, 1, dtype=torch.float64)], dim=1)  # [5, 17]
    factor = model.layers[1].cov.factor()  # rows: W (2x16 row-major) then b (2)
    for o in range(2):
        rows = torch.cat([factor[o * 16 : (o + 1) * 16], factor[32 + o : 33 + o]])
        var = ((h @ rows) ** 2).sum(-1)
        torch.testing.assert_close(pred.std[:, o], var.sqrt(), rtol=0.12, atol=0)
    torch.testing.assert_close(pred.mean, model.posterior_mean(x), rtol=0, atol=0.15)


@pytest.mark.parametrize(("cov", "rank"), [("diagonal", None), ("lowrank", 3)])
def test_output_moments_are_those_of_the_output_layers_noise_given_the_rest(cov, rank):
    """output_moments(x, noise): mean and variance over the output layer's noise with the
    input layer at the draw ``noise``; 20,000 draws of that noise alone estimate them (relative
    s.e. of a variance sqrt(2/20000) = 1%, tolerance 5%; the mean within 5 s.e.)."""
    torch.manual_seed(1)
    model = make_mlp(3, 2, (16,), cov=cov, rank=rank, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    noise = model.sample_noise()
    mean, var = model.output_moments(x, noise)
    n = 20_000
    first, last = noise.tensors[0], model.sample_noise((n,)).tensors[1]
    draws = model(x, Noise((first.expand(n, -1), last), torch.Size([n])))
    torch.testing.assert_close(draws.var(0), var, rtol=0.05, atol=0)
    assert ((draws.mean(0) - mean).abs() <= 5 * (var / n).sqrt()).all()
    other = model.sample_noise()  # the output layer's part of the draw is not used
    mixed = Noise((noise.tensors[0], other.tensors[1]), torch.Size())
    again = model.output_moments(x, mixed)
    assert torch.equal(again[0], mean) and torch.equal(again[1], var)
    with pytest.raises(ValueError, match="output_moments takes one draw"):
        model.output_moments(x, model.sample_noise((2,)))


def test_model_level_bad_inputs():
    model = make_mlp(4, 2, (8,))
    with pytest.raises(ValueError, match=r"x has shape \(5, 3\); expected \[\*batch, 4\]"):
        model(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"noise has per-layer sizes \[10\]"):
        model(torch.randn(5, 4), Noise((torch.randn(10),), torch.Size()))
    with pytest.raises(TypeError, match=r"noise must be an ivi_rl.Noise"):
        model(torch.randn(5, 4), torch.randn(10))
    with pytest.raises(TypeError, match=r"x has dtype torch.int64; expected the module's floating"):
        model(torch.ones(5, 4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor, got list"):
        model([[1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(ValueError, match=r"either seed= or generator="):
        model.sample_noise(seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"num_samples=1 must be an int >= 2"):
        model.predictive(torch.randn(2, 4), num_samples=1)
