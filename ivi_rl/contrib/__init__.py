"""Variants of the two agents that experiments/RESULTS.md measured and did not adopt.

Each is its own class, built on the main agent's hooks and registered under its own name, so
configs still run it and its results stay reproducible; the main agents (``IVITS``,
``IVIDQN``) carry only what their defaults use and the options a user tunes.

Bandit variants (``make_agent`` names): ``ivi_ts_noise`` (noise-aware IVI-TS: per-arm noise
weights, a prior anchor, draw-coupled targets or noise variables; :mod:`.noise_aware`) and
``ivi_ts_full`` (full covariance factors on small layers). RL: ``ivi_dqn_variant``
(:class:`~.sb3.VariantIVIDQN`: other TD targets, Huber loss, draw-coupled targets, random
prior means, frozen layers, Adam).
"""

from .bandits import BANDIT_VARIANTS, FullFactorIVITS, NoiseAwareIVITS
from .sb3 import RL_VARIANTS, VariantIVIDQN, VariantIVIDQNPolicy

__all__ = [
    "BANDIT_VARIANTS",
    "RL_VARIANTS",
    "FullFactorIVITS",
    "NoiseAwareIVITS",
    "VariantIVIDQN",
    "VariantIVIDQNPolicy",
]
