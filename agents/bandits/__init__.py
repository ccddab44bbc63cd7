"""Bandit agents, each batched over S independent trials (S = 1: a single trial).

``make_agent(name, num_actions, context_dim, seeds, horizon, device=..., **settings)`` builds
any agent of :data:`AGENTS` or a variant of ``ivi_rl.contrib`` by name.
"""

from __future__ import annotations

from ivi_rl.checks import check_choice

from .base import BanditAgent, NeuralSettings, Settings, TrialsDiverged
from .bbb import BBB
from .boot_rms import BootRMS
from .dropout import DropoutTS
from .ivi_ts import IVITS
from .lin_full_post import LinFullPost
from .neural_greedy import NeuralGreedy
from .neural_linear import NeuralLinear
from .neural_ts import NeuralTS
from .play import BanditResult, OneTrial, play, run_agent
from .uniform import Uniform

__all__ = [
    "AGENTS",
    "BBB",
    "IVITS",
    "BanditAgent",
    "BanditResult",
    "BootRMS",
    "DropoutTS",
    "LinFullPost",
    "NeuralGreedy",
    "NeuralLinear",
    "NeuralSettings",
    "NeuralTS",
    "OneTrial",
    "Settings",
    "TrialsDiverged",
    "Uniform",
    "agent_classes",
    "make_agent",
    "play",
    "run_agent",
]

AGENTS: dict[str, type[BanditAgent]] = {
    cls.name: cls
    for cls in (
        Uniform,
        LinFullPost,
        NeuralGreedy,
        NeuralLinear,
        NeuralTS,
        BBB,
        DropoutTS,
        BootRMS,
        IVITS,
    )
}


def agent_classes() -> dict[str, type[BanditAgent]]:
    """Every agent by name: :data:`AGENTS` and the variants of ``ivi_rl.contrib``."""
    from ivi_rl.contrib.bandits import BANDIT_VARIANTS  # its agents build on this package's

    return {**AGENTS, **BANDIT_VARIANTS}


def make_agent(
    name: str, num_actions: int, context_dim: int, seeds, horizon: int, **kwargs
) -> BanditAgent:
    """Build the named agent for ``len(seeds)`` parallel trials."""
    classes = agent_classes()
    return classes[check_choice("agent", name, classes)](
        num_actions, context_dim, seeds, horizon, **kwargs
    )
