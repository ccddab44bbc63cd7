"""String options of the public API, as ``StrEnum`` members (so ``"lowrank"`` and
``CovarianceFamily.LOWRANK`` are interchangeable), plus one parser that turns a bad
value into an error naming the argument, the value and what is accepted."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from .checks import check_choice

__all__ = [
    "Activation",
    "CovarianceFamily",
    "LayerKind",
    "Loss",
    "OptimizerKind",
    "ParamKind",
    "ParametrizationName",
    "StochasticLayers",
    "parse_enum",
]


class CovarianceFamily(StrEnum):
    """Gaussian family of one layer's weights and bias, w = mu + S z."""

    DIAGONAL = "diagonal"
    """Mean-field: S = diag(s); one noise entry per parameter."""
    LOWRANK = "lowrank"
    """Dense factor S of shape [P, R] with a fixed rank R <= P."""
    FULL = "full"
    """Dense square factor S of shape [P, P] (full covariance; only for small layers)."""


class LayerKind(StrEnum):
    """Role of a layer in the maximal-update parametrization (muP)."""

    INPUT = "input"
    """Finite fan-in, width-sized fan-out."""
    HIDDEN = "hidden"
    """Width-sized fan-in and fan-out."""
    OUTPUT = "output"
    """Width-sized fan-in, finite fan-out."""


class ParamKind(StrEnum):
    WEIGHT = "weight"
    BIAS = "bias"


class OptimizerKind(StrEnum):
    """Optimizer family the learning-rate multipliers are derived for."""

    SGD = "sgd"
    ADAM = "adam"


class ParametrizationName(StrEnum):
    MUP = "mup"
    """Maximal-update parametrization (Yang et al., Tensor Programs V, Table 3)."""
    SP = "sp"
    """Standard parametrization: 1/sqrt(fan_in) weights, unit biases, no LR scaling."""


class StochasticLayers(StrEnum):
    """Which layers of an MLP carry a covariance."""

    INPUT_OUTPUT = "input_output"
    """The paper's default: first and last layer stochastic, hidden layers deterministic."""
    LAST = "last"
    """Only the output layer is stochastic."""
    ALL = "all"
    """Every layer is stochastic (mean-field by default)."""
    NONE = "none"
    """A deterministic network (every layer behaves as torch.nn.Linear)."""


class Activation(StrEnum):
    RELU = "relu"
    TANH = "tanh"
    GELU = "gelu"
    SILU = "silu"
    ELU = "elu"
    IDENTITY = "identity"


class Loss(StrEnum):
    MSE = "mse"
    """Squared error summed over (masked) outputs, averaged over data and weight samples."""
    GAUSSIAN = "gaussian"
    """Gaussian negative log-likelihood with a fixed noise std (an NLL, usable in an ELBO)."""
    CROSS_ENTROPY = "cross_entropy"
    """Categorical negative log-likelihood of logits."""


E = TypeVar("E", bound=StrEnum)


def parse_enum(enum_cls: type[E], value: object, argument: str) -> E:
    """Return ``enum_cls(value)``, or :func:`ivi_rl.checks.check_choice`'s error naming
    ``argument`` and the accepted values."""
    if isinstance(value, enum_cls):
        return value
    return enum_cls(check_choice(argument, value, (m.value for m in enum_cls)))
