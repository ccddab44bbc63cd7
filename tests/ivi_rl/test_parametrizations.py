import math

import pytest
import torch

from ivi_rl import MaximalUpdate, Standard, VariationalLinear, get_parametrization, make_mlp
from ivi_rl.enums import LayerKind, OptimizerKind, ParamKind

IN, HID, OUT = LayerKind.INPUT, LayerKind.HIDDEN, LayerKind.OUTPUT
W, B = ParamKind.WEIGHT, ParamKind.BIAS
SGD, ADAM = OptimizerKind.SGD, OptimizerKind.ADAM


def test_mup_table_values():
    """The muP rows of ivi-method.md section 4, at fan_in 64 and fan_out 32."""
    p = MaximalUpdate()
    fi, fo = 64, 32
    assert [p.init_std(k, W, fi, fo) for k in (IN, HID, OUT)] == [1 / 8, 1 / 8, 1 / 64]
    assert [p.init_std(k, B, fi, fo) for k in (IN, HID, OUT)] == [1.0, 1.0, 1.0]
    assert [p.lr_multiplier(k, W, fi, fo, SGD) for k in (IN, HID, OUT)] == [32.0, 1.0, 1 / 64]
    assert [p.lr_multiplier(k, B, fi, fo, SGD) for k in (IN, HID, OUT)] == [32.0, 32.0, 32.0]
    assert [p.lr_multiplier(k, W, fi, fo, ADAM) for k in (IN, HID, OUT)] == [1.0, 1 / 64, 1 / 64]
    assert [p.lr_multiplier(k, B, fi, fo, ADAM) for k in (IN, HID, OUT)] == [1.0, 1.0, 1.0]


def test_sp_table_values():
    p = Standard()
    for kind in (IN, HID, OUT):
        assert p.init_std(kind, W, 64, 32) == 1 / 8
        assert p.init_std(kind, B, 64, 32) == 1.0
        for opt in (SGD, ADAM):
            assert p.lr_multiplier(kind, W, 64, 32, opt) == 1.0


def test_factor_multipliers_match_the_worked_examples():
    """ivi-method.md section 4: muP, SGD, full rank. Input 2->64 (P = R = 192): factor
    multiplier 64/192. Output 64->1 (R = 65): weight-factor multiplier (1/64)(1/65)."""
    first = dict(
        (n, m)
        for n, _, m in VariationalLinear(2, 64, cov="full", layer_kind="input").lr_multipliers(
            "sgd"
        )
    )
    assert first["cov.weight_factor"] == pytest.approx(64 / 192)
    assert first["cov.bias_factor"] == pytest.approx(64 / 192)
    last = dict(
        (n, m)
        for n, _, m in VariationalLinear(64, 1, cov="full", layer_kind="output").lr_multipliers(
            "sgd"
        )
    )
    assert last["cov.weight_factor"] == pytest.approx(1 / 64 / 65)
    assert last["cov.bias_factor"] == pytest.approx(1 / 65)


@pytest.mark.parametrize("width", [128, 1024])
def test_mup_init_stds_match_the_table_statistically(width):
    """Sample stds of every initialised tensor against the muP table at two widths.

    A sample std over n i.i.d. normals has relative s.e. 1/sqrt(2n); we allow 5 s.e.
    (the smallest tensor here has n = 3 output biases, so biases are pooled over 20 inits)."""
    torch.manual_seed(1)
    d_in, d_out = 32, 3
    model = make_mlp(d_in, d_out, (width, width), cov="lowrank", rank=4)
    expected_w = [1 / math.sqrt(d_in), 1 / math.sqrt(width), 1 / width]
    for layer, sigma in zip(model.layers, expected_w, strict=True):
        n = layer.weight.numel()
        assert layer.weight.std().item() == pytest.approx(sigma, rel=5 / math.sqrt(2 * n))
        if layer.cov is not None:
            factor = layer.cov.weight_factor
            target = sigma / math.sqrt(4)
            assert factor.std().item() == pytest.approx(
                target, rel=5 / math.sqrt(2 * factor.numel())
            )
    biases = []
    for _ in range(20):
        model.reset_parameters()
        biases.append(torch.cat([layer.bias for layer in model.layers]).detach())
    pooled = torch.cat(biases)
    assert pooled.std().item() == pytest.approx(1.0, rel=5 / math.sqrt(2 * pooled.numel()))


def test_get_parametrization_by_name_and_object():
    assert isinstance(get_parametrization("mup"), MaximalUpdate)
    assert isinstance(get_parametrization("sp"), Standard)
    p = Standard()
    assert get_parametrization(p) is p
    with pytest.raises(
        ValueError, match=r"parametrization='µP' is not accepted; accepted: mup, sp$"
    ):
        get_parametrization("µP")


def test_zero_bias_std_makes_biases_point_masses_at_zero():
    model = make_mlp(6, 3, (16, 16), parametrization=MaximalUpdate(bias_std=0.0))
    for layer in model.layers:
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    out_cov = model.layers[-1].cov
    assert torch.equal(out_cov.bias_factor, torch.zeros_like(out_cov.bias_factor))
    # biases have no variance, so every draw shares them; weights stay random
    w, b = model.layers[-1].sampled_parameters(model.layers[-1].sample_noise((4,)))
    assert torch.equal(b, torch.zeros_like(b)) and w.std(0).min() > 0
    assert MaximalUpdate(0.0) == MaximalUpdate(0.0) != MaximalUpdate()
    assert get_parametrization(MaximalUpdate(0.0)).bias_std == 0.0
    with pytest.raises(ValueError, match=r"bias_std=-1 must be a number >= 0"):
        Standard(bias_std=-1)
