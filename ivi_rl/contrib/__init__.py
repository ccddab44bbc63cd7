"""Variants of the two agents that experiments/RESULTS.md measured and did not adopt.

Each is its own class, built on the main agent's hooks and registered under its own name, so
configs still run it and its results stay reproducible; the main agents (``IVITS``,
``IVIDQN``) carry only what their defaults use and the options a user tunes.

Bandit variants (``make_agent`` names): ``ivi_ts_noise`` (noise-aware IVI-TS: per-arm noise
weights, a prior anchor, draw-coupled targets or noise variables; :mod:`.noise_aware`) and
``ivi_ts_full`` (full covariance factors on small layers).
"""

from .bandits import BANDIT_VARIANTS, FullFactorIVITS, NoiseAwareIVITS

__all__ = ["BANDIT_VARIANTS", "FullFactorIVITS", "NoiseAwareIVITS"]
