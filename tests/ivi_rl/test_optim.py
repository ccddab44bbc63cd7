import pytest
import torch
from torch import nn

from ivi_rl import VariationalLinear, make_mlp, make_optimizer, param_groups, set_base_lr

PRESETS = [
    {"stochastic": "input_output"},
    {"stochastic": "input_output", "cov": "full", "hidden": (8, 8)},
    {"stochastic": "last"},
    {"stochastic": "all"},
    {"stochastic": "all", "cov": "lowrank", "rank": 3},
    {"stochastic": "none"},
]


def _group_ids(groups):
    return [id(p) for g in groups for p in g["params"]]


@pytest.mark.parametrize("kwargs", PRESETS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_every_trainable_parameter_in_exactly_one_group(kwargs, optimizer):
    hidden = kwargs.pop("hidden", (16, 16))
    model = make_mlp(5, 3, hidden, **kwargs)
    groups = param_groups(model, 0.1, optimizer)
    ids = _group_ids(groups)
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert len(ids) == len(set(ids))
    for g in groups:
        assert g["lr"] == pytest.approx(0.1 * g["lr_multiplier"])


class WithNorms(nn.Module):
    """A model mixing variational layers and every norm layer muP knows."""

    def __init__(self):
        super().__init__()
        self.inp = VariationalLinear(4, 16, cov="lowrank", rank=2, layer_kind="input")
        self.ln = nn.LayerNorm(16)
        self.gn = nn.GroupNorm(4, 16)
        self.bn = nn.BatchNorm1d(16)
        self.rms = nn.RMSNorm(16)
        self.out = VariationalLinear(16, 2, cov="diagonal", layer_kind="output")


def test_norm_layers_are_not_dropped_and_get_the_vector_rule():
    model = WithNorms()
    groups = param_groups(model, 1e-3, "sgd")
    ids = _group_ids(groups)
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    names = {n: g["lr_multiplier"] for g in groups for n in g["names"]}
    for norm in ("ln", "gn", "bn", "rms"):
        assert names[f"{norm}.weight"] == 16.0  # input-layer-like: SGD multiplier = width
    adam = {n: g["lr_multiplier"] for g in param_groups(model, 1e-3, "adam") for n in g["names"]}
    assert adam["ln.weight"] == 1.0 and adam["ln.bias"] == 1.0


def test_frozen_parameters_are_left_out():
    model = make_mlp(3, 2, (8,))
    model.layers[0].weight.requires_grad_(False)
    ids = _group_ids(param_groups(model, 0.1))
    assert id(model.layers[0].weight) not in ids
    assert len(ids) == sum(1 for p in model.parameters() if p.requires_grad)


def test_module_without_a_rule_is_an_error():
    model = nn.Sequential(VariationalLinear(3, 4), nn.Conv1d(1, 1, 3))
    with pytest.raises(
        TypeError, match=r"module '1' of type Conv1d owns parameters \(1.weight, 1.bias\)"
    ):
        param_groups(model, 0.1)


def test_set_base_lr_keeps_multipliers():
    model = make_mlp(3, 2, (8,))
    opt = make_optimizer(model, 0.1)
    set_base_lr(opt, 0.01)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(0.01 * g["lr_multiplier"])
    assert len({g["lr"] for g in opt.param_groups}) > 1  # muP really differs per group
    plain = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"param_groups\[0\] has no 'lr_multiplier'"):
        set_base_lr(plain, 0.01)
    with pytest.raises(ValueError, match=r"lr=-1 must be a float >= 0"):
        set_base_lr(opt, -1)
    set_base_lr(opt, 0.0)  # a schedule may end at 0
    assert all(g["lr"] == 0 for g in opt.param_groups)
    with pytest.raises(ValueError, match=r"lr=0 must be a positive float"):
        param_groups(model, 0)


def test_make_optimizer_kinds_and_defaults():
    model = make_mlp(3, 2, (8,))
    sgd = make_optimizer(model, 0.1)
    assert isinstance(sgd, torch.optim.SGD)
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 0 for g in sgd.param_groups)
    assert isinstance(make_optimizer(model, 0.1, "adam"), torch.optim.Adam)
    with pytest.raises(
        ValueError, match=r"optimizer='rmsprop' is not accepted; accepted: sgd, adam$"
    ):
        make_optimizer(model, 0.1, "rmsprop")
