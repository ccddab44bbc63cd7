"""Environments: the Deep Bayesian Bandits Showdown datasets and Deep Sea, as gymnasium envs.

Importing this package registers every env under the ``ivi_rl`` namespace, e.g.
``gymnasium.make("ivi_rl/Wheel-v0", delta=0.9)``, ``gymnasium.make("ivi_rl/Mushroom-v0")``,
``gymnasium.make("ivi_rl/DeepSea-v0", size=20)``. Whole trials as arrays:
``make_problem("wheel", delta=0.9).sample_trial(horizon, seed)``.
"""

import gymnasium as gym

from .bandit_env import ContextualBanditEnv
from .data import FILES, ChecksumError, DataFile, MissingDataError, data_dir, data_path
from .deep_sea import DeepSeaEnv, deep_sea_score, optimal_return, solve_episode, solve_rule
from .problems import (
    BanditProblem,
    LinearProblem,
    NeuralUCBProblem,
    SparseLinearProblem,
    WheelProblem,
)
from .registry import DATASETS, make_problem
from .stress import STRESS_KINDS, StressProblem
from .tabular import ArraysProblem, ClassificationProblem, FinancialProblem, MushroomProblem
from .trial import Trial

__all__ = [
    "BANDIT_IDS",
    "DATASETS",
    "FILES",
    "STRESS_KINDS",
    "ArraysProblem",
    "BanditProblem",
    "ChecksumError",
    "ClassificationProblem",
    "ContextualBanditEnv",
    "DataFile",
    "DeepSeaEnv",
    "FinancialProblem",
    "LinearProblem",
    "MissingDataError",
    "MushroomProblem",
    "NeuralUCBProblem",
    "SparseLinearProblem",
    "StressProblem",
    "Trial",
    "WheelProblem",
    "data_dir",
    "data_path",
    "deep_sea_score",
    "make_problem",
    "optimal_return",
    "solve_episode",
    "solve_rule",
]

BANDIT_IDS = {
    "Mushroom": "mushroom",
    "Statlog": "statlog",
    "Covertype": "covertype",
    "Adult": "adult",
    "Census": "census",
    "Financial": "financial",
    "Jester": "jester",
    "Arrays": "arrays",
    "Classification": "classification",
    "Wheel": "wheel",
    "Linear": "linear",
    "SparseLinear": "sparse_linear",
    "NeuralUCB": "neural_ucb",
}
"""Gymnasium id stem (``ivi_rl/<stem>-v0``) -> dataset name."""


def _register() -> None:
    for stem, dataset in BANDIT_IDS.items():
        env_id = f"ivi_rl/{stem}-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=ContextualBanditEnv, kwargs={"dataset": dataset})
    # bsuite's mapping seeds: deep_sea's sweep sets 42, deep_sea_stochastic's keeps 0
    stochastic = {"deterministic": False, "mapping_seed": 0}
    for stem, kwargs in (("DeepSea", {}), ("DeepSeaStochastic", stochastic)):
        env_id = f"ivi_rl/{stem}-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=DeepSeaEnv, kwargs=kwargs)


_register()
