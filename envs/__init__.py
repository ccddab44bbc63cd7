"""Environments: Showdown contextual bandits and Deep Sea as gymnasium envs (issue 3)."""
