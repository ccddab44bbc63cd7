"""Agents: bandit agents (``agents.bandits``) and posterior-sampling DQN variants for
stable-baselines3: :class:`IVIDQN`, :class:`BootstrappedDQN`, :class:`NoisyDQN`."""

from .sb3.ensemble import BootstrappedDQN
from .sb3.ivi_dqn import IVIDQN
from .sb3.noisy import NoisyDQN
from .sb3.policies import IVIDQNPolicy, PosteriorQNetwork

__all__ = ["IVIDQN", "BootstrappedDQN", "IVIDQNPolicy", "NoisyDQN", "PosteriorQNetwork"]
