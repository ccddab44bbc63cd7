"""Bandit agents, each batched over S independent trials (S = 1: a single trial).

``make_agent(name, num_actions, context_dim, seeds, horizon, device=..., **settings)``.
"""

from __future__ import annotations

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


def make_agent(
    name: str, num_actions: int, context_dim: int, seeds, horizon: int, **kwargs
) -> BanditAgent:
    """Build the named agent for ``len(seeds)`` parallel trials."""
    if not isinstance(name, str) or name not in AGENTS:
        raise ValueError(f"agent={name!r} is not accepted; accepted: {', '.join(AGENTS)}")
    return AGENTS[name](num_actions, context_dim, seeds, horizon, **kwargs)
