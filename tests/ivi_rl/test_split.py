import pytest
import torch

from ivi_rl import Noise, SplitMLP, make_mlp


def split(n_out=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    nets = [
        make_mlp(5, 1, (7,), stochastic="last", cov="full", bias=False, **kwargs)
        for _ in range(n_out)
    ]
    return SplitMLP(nets), nets


def test_outputs_are_the_sub_networks_outputs_under_their_part_of_the_draw():
    model, nets = split()
    x = torch.randn(4, 5)
    noise = model.sample_noise((6,), seed=1)
    parts = model.split_noise(noise)
    assert [p.tensors[0].shape for p in parts] == [torch.Size([6, 7])] * 3
    expected = torch.cat([net(x, part) for net, part in zip(nets, parts, strict=True)], -1)
    torch.testing.assert_close(model(x, noise), expected, rtol=0, atol=0)
    assert model(x, noise).shape == (6, 4, 3)
    torch.testing.assert_close(
        model.posterior_mean(x), torch.cat([net.posterior_mean(x) for net in nets], -1)
    )
    # one batch per draw (one per environment)
    xs = torch.randn(6, 1, 5)
    held = model(xs, noise, x_has_sample_dims=True)
    assert held.shape == (6, 1, 3)
    torch.testing.assert_close(held[2], model(xs[2], noise[2]))


def test_a_seeded_draw_is_reproducible_and_the_sub_networks_draws_are_independent():
    model, _ = split()
    a, b = model.sample_noise((2,), seed=3), model.sample_noise((2,), seed=3)
    assert all(torch.equal(s, t) for s, t in zip(a.tensors, b.tensors, strict=True))
    assert model.noise_dim == 3 * 7
    draws = model.sample_noise((20_000,), seed=4)
    flat = torch.cat(draws.tensors, -1)
    cross = flat[:, :7].T @ flat[:, 7:14] / flat.shape[0]  # sub-networks 0 and 1
    assert cross.abs().max() < 4.5 / flat.shape[0] ** 0.5  # sd 1/sqrt(n) per entry


def test_output_moments_are_the_sub_networks_moments_and_match_sampling():
    model, nets = split(n_out=2, parametrization="sp")
    x = torch.randn(3, 5)
    noise = model.sample_noise(seed=0)
    mean, var = model.output_moments(x, noise)
    for j, (net, part) in enumerate(zip(nets, model.split_noise(noise), strict=True)):
        m, v = net.output_moments(x, part)
        torch.testing.assert_close(mean[:, j : j + 1], m)
        torch.testing.assert_close(var[:, j : j + 1], v)
    # every layer but the readout is deterministic: the moments are those of all draws
    draws = model(x, sample_shape=(40_000,), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(draws.mean(0), mean, atol=4 * var.max().sqrt().item() / 200, rtol=0)
    torch.testing.assert_close(draws.var(0), var, rtol=0.05, atol=0)


def test_one_outputs_loss_leaves_the_other_sub_networks_untouched():
    model, nets = split()
    model(torch.randn(8, 5), model.sample_noise(seed=0))[:, 1].square().sum().backward()
    for j, net in enumerate(nets):
        grads = [p.grad for p in net.parameters()]
        if j == 1:
            assert all(g is not None and g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None or not g.any() for g in grads)


def test_bad_sub_networks_and_noise_are_named():
    with pytest.raises(ValueError, match="each with 1 output"):
        SplitMLP([make_mlp(5, 2, (7,))])
    with pytest.raises(ValueError, match="same input size"):
        SplitMLP([make_mlp(5, 1, (7,)), make_mlp(4, 1, (7,))])
    model, _ = split()
    with pytest.raises(ValueError, match=r"noise has per-layer sizes \[7\]"):
        model(torch.randn(2, 5), Noise((torch.randn(7),), torch.Size()))
    with pytest.raises(TypeError, match=r"noise must be an ivi_rl\.Noise"):
        model(torch.randn(2, 5), torch.randn(21))
    noise = model.sample_noise()
    with pytest.raises(ValueError, match=r"x has shape \(2, 4\); expected \[\*batch, 5\]"):
        model(torch.randn(2, 4), noise)
    with pytest.raises(TypeError, match=r"x has dtype torch.int64"):
        model(torch.ones(2, 5, dtype=torch.long), noise)
    with pytest.raises(ValueError, match=r"x_has_sample_dims=True with sample_shape \(3,\)"):
        model(torch.randn(5), model.sample_noise((3,)), x_has_sample_dims=True)
