"""ivi_rl core: variational networks trained by implicit-regularisation variational inference.

A network with Gaussian weights, trained by plain SGD on the expected loss only (no KL, no
prior term, no weight decay), starting from the prior (= the initialisation) in the maximal-
update parametrization. See Wenger, Coker, Marusic, Cunningham, "Variational Deep Learning via
Implicit Regularization" (arXiv 2505.20235).
"""

from .checks import resolve_device
from .covariances import Covariance, DiagonalCovariance, FullCovariance, LowRankCovariance
from .draws import Noise, PosteriorDraw
from .enums import (
    Activation,
    CovarianceFamily,
    LayerKind,
    Loss,
    OptimizerKind,
    ParametrizationName,
    ParamKind,
    StochasticLayers,
)
from .gaussian import Gaussian, layer_gaussian, linear_ivi_limit, wasserstein2
from .linear import VariationalLinear, make_covariance
from .mlp import DEFAULT_RANK, Predictive, VariationalMLP, make_mlp
from .objectives import expected_loss, kl_divergence, negative_elbo, per_datum_loss
from .optim import make_optimizer, param_groups, set_base_lr
from .parametrizations import MaximalUpdate, Parametrization, Standard, get_parametrization
from .split import SplitMLP
from .stability import layer_curvatures, layer_rates, stable_step_scale

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_RANK",
    "Activation",
    "Covariance",
    "CovarianceFamily",
    "DiagonalCovariance",
    "FullCovariance",
    "Gaussian",
    "LayerKind",
    "Loss",
    "LowRankCovariance",
    "MaximalUpdate",
    "Noise",
    "OptimizerKind",
    "ParamKind",
    "Parametrization",
    "ParametrizationName",
    "PosteriorDraw",
    "Predictive",
    "SplitMLP",
    "Standard",
    "StochasticLayers",
    "VariationalLinear",
    "VariationalMLP",
    "expected_loss",
    "get_parametrization",
    "kl_divergence",
    "layer_curvatures",
    "layer_gaussian",
    "layer_rates",
    "linear_ivi_limit",
    "make_covariance",
    "make_mlp",
    "make_optimizer",
    "negative_elbo",
    "param_groups",
    "per_datum_loss",
    "resolve_device",
    "set_base_lr",
    "stable_step_scale",
    "wasserstein2",
]
