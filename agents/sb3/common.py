"""Pieces shared by the posterior-sampling DQN variants."""

from __future__ import annotations

from gymnasium import spaces

__all__ = ["check_spaces"]


def check_spaces(algorithm: str, env) -> None:
    """A Discrete action space and a Box observation space, or one clear error."""
    if env is None or isinstance(env, str):
        return  # SB3 builds string envs itself and checks them again in _setup_model
    action_space, observation_space = env.action_space, env.observation_space
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(
            f"{algorithm} needs a Discrete action space (one Q-value per action); the env has "
            f"{action_space}. For continuous actions use an actor-critic algorithm."
        )
    if not isinstance(observation_space, spaces.Box):
        raise ValueError(
            f"{algorithm} needs a Box observation space; the env has {observation_space} "
            "(wrap it, e.g. gymnasium.wrappers.FlattenObservation or a one-hot wrapper)"
        )
