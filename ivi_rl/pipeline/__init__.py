"""The experiment pipeline behind ``ivi-rl bandit`` and ``ivi-rl rl``: a TOML config is
planned into tasks, the tasks run on an executor (in this process, a local process pool or a
Ray cluster), their results are stored atomically by the driver alone (resume skips finished
tasks) and a report (summary tables, plots, TensorBoard mean runs) is written.

    from ivi_rl.pipeline import run_bandit, run_rl
    run_bandit("experiments/default.toml", out="runs/wheel")
"""

from .bandit import run_bandit
from .errors import ConfigError
from .pipeline import DivergedTrials
from .rl import run_rl

__all__ = ["ConfigError", "DivergedTrials", "run_bandit", "run_rl"]
