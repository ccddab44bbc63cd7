"""The pipeline's error for a run that cannot start, shared by configs, executors and locks."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config that cannot run; the message names the file, the place and the fix."""
