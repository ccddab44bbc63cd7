import pytest
import torch

from ivi_rl import expected_loss, make_mlp, make_optimizer, resolve_device


def test_tensors_follow_the_module_dtype():
    model = make_mlp(3, 2, (8,), dtype=torch.float64)
    noise = model.sample_noise((4,), seed=0)
    assert all(t.dtype == torch.float64 for t in noise.tensors)
    assert model(torch.randn(5, 3, dtype=torch.float64), noise).dtype == torch.float64


def test_resolve_device_errors():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device='tpu' is not a device"):
        resolve_device("tpu")
    with pytest.raises(TypeError, match=r"device=3 must be a str or torch.device"):
        resolve_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device='cuda' was requested but torch.cuda"):
            resolve_device("cuda")


@pytest.mark.cuda
def test_everything_runs_on_cuda(cuda_device):
    model = make_mlp(6, 3, (16, 16), device=cuda_device)
    x = torch.randn(32, 6, device=cuda_device)
    y = torch.randn(32, 3, device=cuda_device)
    gen = torch.Generator(device=cuda_device).manual_seed(0)
    noise = model.sample_noise((4,), gen)
    assert all(t.device.type == "cuda" for t in noise.tensors)
    out = model(x, noise)
    assert out.device.type == "cuda" and out.shape == (4, 32, 3)
    draw = model.draw(seed=3)
    assert torch.equal(draw(x), draw(x))
    opt = make_optimizer(model, 1e-3)
    before = model.layers[0].weight.detach().clone()
    loss = expected_loss(model, x, y, mask=torch.ones_like(y), generator=gen)
    loss.backward()
    opt.step()
    assert not torch.equal(before, model.layers[0].weight)
    assert model.predictive(x, num_samples=8).std.device.type == "cuda"
    with pytest.raises(ValueError, match=r"x is on device cpu"):
        model(torch.randn(2, 6))
    with pytest.raises(ValueError, match=r"generator is on device cpu"):
        model.sample_noise(generator=torch.Generator())
