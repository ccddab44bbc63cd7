"""Optimizers built from a parametrization's per-parameter learning-rate multipliers.

Every trainable parameter of the model lands in exactly one group (checked, not assumed: the
reference implementation silently drops norm-layer parameters). Each group stores its
``lr_multiplier`` so a training loop or a scheduler can set ``lr = base_lr * multiplier``
with :func:`set_base_lr` instead of overwriting every group with one value, which would
silently undo muP.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import nn

from .enums import OptimizerKind, parse_enum
from .linear import VariationalLinear
from .parametrizations import Parametrization, get_parametrization

__all__ = ["make_optimizer", "param_groups", "set_base_lr"]

_NORM_LAYERS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.RMSNorm)


def param_groups(
    model: nn.Module,
    lr: float,
    optimizer: str | OptimizerKind = OptimizerKind.SGD,
    parametrization: str | Parametrization | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with ``lr = lr * multiplier`` per group.

    Parameters with the same multiplier share a group. Each group carries ``lr_multiplier``
    and ``names``. :class:`VariationalLinear` layers use their own parametrization; norm
    layers (LayerNorm, GroupNorm, BatchNorm, RMSNorm) get the vector-like (input-layer) rule of
    ``parametrization`` (default: the one shared by the model's variational layers). Any other
    module that owns parameters is an error, because no muP rule is known for it.
    """
    _check_lr(lr)
    opt = parse_enum(OptimizerKind, optimizer, "optimizer")
    param = _model_parametrization(model, parametrization)
    by_multiplier: dict[float, dict[str, list]] = defaultdict(lambda: {"params": [], "names": []})
    for name, p, mult in _named_multipliers(model, opt, param):
        if p.requires_grad:
            by_multiplier[mult]["params"].append(p)
            by_multiplier[mult]["names"].append(name)
    groups = [
        {"params": g["params"], "names": g["names"], "lr": lr * m, "lr_multiplier": m}
        for m, g in by_multiplier.items()
    ]
    _check_coverage(model, groups)
    return groups


def make_optimizer(
    model: nn.Module,
    lr: float,
    optimizer: str | OptimizerKind = OptimizerKind.SGD,
    *,
    momentum: float = 0.9,
    parametrization: str | Parametrization | None = None,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """SGD (momentum 0.9, no weight decay, as in the paper) or Adam over :func:`param_groups`."""
    opt = parse_enum(OptimizerKind, optimizer, "optimizer")
    groups = param_groups(model, lr, opt, parametrization)
    if opt is OptimizerKind.SGD:
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, **kwargs)
    return torch.optim.Adam(groups, lr=lr, **kwargs)


def set_base_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's ``lr`` to ``lr * group['lr_multiplier']`` (e.g. from a schedule,
    which may end at 0)."""
    _check_lr(lr, allow_zero=True)
    for i, group in enumerate(optimizer.param_groups):
        if "lr_multiplier" not in group:
            raise ValueError(
                f"optimizer.param_groups[{i}] has no 'lr_multiplier'; build the optimizer with "
                "ivi_rl.make_optimizer or ivi_rl.param_groups"
            )
        group["lr"] = lr * group["lr_multiplier"]


def _named_multipliers(model: nn.Module, opt: OptimizerKind, param: Parametrization | None):
    # Submodules of a VariationalLinear (its covariance) are covered by the layer itself.
    covered = {
        id(sub)
        for m in model.modules()
        if isinstance(m, VariationalLinear)
        for sub in m.modules()
        if sub is not m
    }
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, VariationalLinear):
            for name, p, mult in module.lr_multipliers(opt):
                yield prefix + name, p, mult
            continue
        if id(module) in covered:
            continue
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        if isinstance(module, _NORM_LAYERS) and param is not None:
            for name, p in own:
                yield prefix + name, p, param.vector_lr_multiplier(p.numel(), opt)
            continue
        names = ", ".join(prefix + n for n, _ in own)
        raise TypeError(
            f"module {module_name or '<root>'!r} of type {type(module).__name__} owns parameters "
            f"({names}) with no learning-rate rule; accepted: VariationalLinear and norm layers "
            "(LayerNorm, GroupNorm, BatchNorm, RMSNorm)"
        )


def _model_parametrization(
    model: nn.Module, parametrization: str | Parametrization | None
) -> Parametrization | None:
    if parametrization is not None:
        return get_parametrization(parametrization)
    found = {m.parametrization for m in model.modules() if isinstance(m, VariationalLinear)}
    if len(found) > 1:
        raise ValueError(
            f"the model mixes parametrizations {sorted(p.name.value for p in found)}; pass "
            "parametrization= for its norm layers"
        )
    return next(iter(found), None)


def _check_coverage(model: nn.Module, groups: list[dict[str, Any]]) -> None:
    seen: dict[int, int] = defaultdict(int)
    for g in groups:
        for p in g["params"]:
            seen[id(p)] += 1
    missing = [n for n, p in model.named_parameters() if p.requires_grad and seen[id(p)] == 0]
    doubled = [n for n, p in model.named_parameters() if seen[id(p)] > 1]
    if missing or doubled:
        raise RuntimeError(f"parameter groups miss {missing} and repeat {doubled}")


def _check_lr(lr: float, allow_zero: bool = False) -> None:
    if (
        isinstance(lr, bool)
        or not isinstance(lr, (int, float))
        or not (lr > 0 or (allow_zero and lr == 0))
    ):
        accepted = "a float >= 0" if allow_zero else "a positive float"
        raise ValueError(f"lr={lr!r} must be {accepted}")
