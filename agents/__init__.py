"""Agents: bandit agents and stable-baselines3 posterior-sampling algorithms."""
