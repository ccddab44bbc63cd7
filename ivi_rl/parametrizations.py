"""Parametrizations: per-layer init std and learning-rate multipliers.

The maximal-update parametrization (muP) rows follow Tensor Programs V (Yang et al., 2022,
arXiv 2203.03466), Table 3, in the form used by the IVI reference implementation:

============  ==========================  ==========================  ===========================
Parameter     init std in/hidden/out      SGD LR mult in/hidden/out   Adam LR mult in/hidden/out
============  ==========================  ==========================  ===========================
weight        1/sqrt(fi), 1/sqrt(fi),     fan_out, 1, 1/fi            1, 1/fi, 1/fi
              1/fi
bias          1, 1, 1                     fan_out everywhere          1 everywhere
============  ==========================  ==========================  ===========================

(fi = fan_in.) The standard parametrization (SP) uses 1/sqrt(fan_in) weights, unit-std biases
and multiplier 1 everywhere. Covariance factors derive their init std and multiplier from
the mean entry they belong to (see :mod:`ivi_rl.covariances`).

The prior of IVI *is* the initialisation, so the init std here is also the prior std.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from .enums import LayerKind, OptimizerKind, ParametrizationName, ParamKind, parse_enum

__all__ = [
    "MaximalUpdate",
    "Parametrization",
    "Standard",
    "get_parametrization",
]


class Parametrization(ABC):
    """Maps (layer kind, parameter kind, fans) to an init std and an LR multiplier.

    ``bias_std`` is the init (= prior) std of every bias, 1 in the table. Under IVI a bias with
    prior std 0 starts as a point mass at 0: mean 0 and zero covariance entries. Only the
    prior is a point mass: training moves the mean, and the covariance entries receive
    gradients like any other parameter and grow from 0 (single-sample SGD puts noise into
    them). A zero-std bias removes the state-independent part of the prior predictive
    (output biases dominate it under muP), which matters when draws must differ *between
    states* (deep exploration).
    """

    name: ParametrizationName

    def __init__(self, bias_std: float = 1.0) -> None:
        if isinstance(bias_std, bool) or not isinstance(bias_std, (int, float)) or bias_std < 0:
            raise ValueError(f"bias_std={bias_std!r} must be a number >= 0")
        self.bias_std = float(bias_std)

    @abstractmethod
    def init_std(self, layer: LayerKind, param: ParamKind, fan_in: int, fan_out: int) -> float:
        """Standard deviation of the (prior) initialisation of a mean parameter."""

    @abstractmethod
    def lr_multiplier(
        self,
        layer: LayerKind,
        param: ParamKind,
        fan_in: int,
        fan_out: int,
        optimizer: OptimizerKind,
    ) -> float:
        """Factor applied to the base learning rate for a mean parameter."""

    def vector_lr_multiplier(self, width: int, optimizer: OptimizerKind) -> float:
        """Multiplier of vector-like parameters such as norm-layer gains and shifts.

        muP treats them like input-layer biases (fan_in 1, fan_out = width).
        """
        return self.lr_multiplier(LayerKind.INPUT, ParamKind.BIAS, 1, width, optimizer)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bias_std={self.bias_std})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Parametrization)
            and other.name == self.name
            and other.bias_std == self.bias_std
        )

    def __hash__(self) -> int:
        return hash((self.name, self.bias_std))


class Standard(Parametrization):
    """Standard parametrization (SP); biases start with std ``bias_std`` (1 by default, not
    PyTorch's 1/sqrt(fan_in))."""

    name = ParametrizationName.SP

    def init_std(self, layer: LayerKind, param: ParamKind, fan_in: int, fan_out: int) -> float:
        return self.bias_std if param is ParamKind.BIAS else 1.0 / math.sqrt(fan_in)

    def lr_multiplier(
        self,
        layer: LayerKind,
        param: ParamKind,
        fan_in: int,
        fan_out: int,
        optimizer: OptimizerKind,
    ) -> float:
        return 1.0


class MaximalUpdate(Parametrization):
    """Maximal-update parametrization (muP), the default of IVI."""

    name = ParametrizationName.MUP

    def init_std(self, layer: LayerKind, param: ParamKind, fan_in: int, fan_out: int) -> float:
        if param is ParamKind.BIAS:
            return self.bias_std
        if layer is LayerKind.OUTPUT:
            return 1.0 / fan_in
        return 1.0 / math.sqrt(fan_in)

    def lr_multiplier(
        self,
        layer: LayerKind,
        param: ParamKind,
        fan_in: int,
        fan_out: int,
        optimizer: OptimizerKind,
    ) -> float:
        if optimizer is OptimizerKind.SGD:
            if param is ParamKind.BIAS or layer is LayerKind.INPUT:
                return float(fan_out)
            return 1.0 if layer is LayerKind.HIDDEN else 1.0 / fan_in
        if param is ParamKind.BIAS or layer is LayerKind.INPUT:
            return 1.0
        return 1.0 / fan_in


_REGISTRY: dict[ParametrizationName, type[Parametrization]] = {
    ParametrizationName.MUP: MaximalUpdate,
    ParametrizationName.SP: Standard,
}


def get_parametrization(parametrization: str | Parametrization) -> Parametrization:
    """Return a parametrization object from a name (``"mup"``, ``"sp"``) or pass one through."""
    if isinstance(parametrization, Parametrization):
        return parametrization
    return _REGISTRY[parse_enum(ParametrizationName, parametrization, "parametrization")]()
