"""One registry of bandit datasets by name: ``make_problem("wheel", delta=0.9)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ivi_rl.checks import check_choice

from .loaders import (
    load_adult,
    load_arrays,
    load_census,
    load_covertype,
    load_financial,
    load_jester,
    load_mushroom,
    load_statlog,
)
from .problems import (
    BanditProblem,
    LinearProblem,
    NeuralUCBProblem,
    SparseLinearProblem,
    WheelProblem,
)
from .stress import StressProblem
from .tabular import ClassificationProblem

__all__ = ["DATASETS", "make_problem"]

DATASETS: dict[str, Callable[..., BanditProblem]] = {
    "mushroom": load_mushroom,
    "statlog": load_statlog,
    "covertype": load_covertype,
    "adult": load_adult,
    "census": load_census,
    "financial": load_financial,
    "jester": load_jester,
    "arrays": load_arrays,
    "classification": ClassificationProblem,
    "wheel": WheelProblem,
    "linear": LinearProblem,
    "sparse_linear": SparseLinearProblem,
    "neural_ucb": NeuralUCBProblem,
    "stress": StressProblem,
}

_FILE_ARGS = ("data_dir", "download")


def make_problem(name: str, **settings) -> BanditProblem:
    """Build the named dataset with its settings.

    ``data_dir`` and ``download`` are passed on to datasets that read files and ignored by
    synthetic ones, so a runner can pass them to every dataset alike. Unknown names and
    unknown settings raise before any file is read.
    """
    check_choice("dataset", name, DATASETS)
    builder = DATASETS[name]
    params = inspect.signature(builder).parameters
    accepted = [p for p in params if p != "self"]
    for key in list(settings):
        if key in _FILE_ARGS and key not in params:
            settings.pop(key)  # a synthetic dataset: no files to read
        elif key not in accepted:
            raise TypeError(
                f"dataset {name!r} got unknown setting {key!r}; accepted: "
                f"{', '.join(accepted) or 'none'}"
            )
    return builder(**settings)
