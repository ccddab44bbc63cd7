"""The declared Python minimum is the one the code and the linter are held to."""

import sys
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def test_declared_minimum_matches_the_linter_target_and_this_interpreter():
    minimum = PYPROJECT["project"]["requires-python"]
    assert minimum == ">=3.11"  # tomllib and enum.StrEnum are 3.11
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py311"
    assert sys.version_info >= (3, 11)
