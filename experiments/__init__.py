"""Experiments: runnable demos, benchmarks and the ivi-rl command line."""

import ast


def parse_setting(text: str) -> tuple[str, object]:
    """``key=value`` from a command line: the value as a Python literal where it is one
    (``lr=0.01``, ``stable_lr=False``), else the string (``cov=full``)."""
    key, _, value = text.partition("=")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value
