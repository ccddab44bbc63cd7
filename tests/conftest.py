"""Shared fixtures. Tests are seeded; tolerances are stated where statistics are compared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    torch.set_num_threads(1 if os.environ.get("CI") else torch.get_num_threads())
    yield


@pytest.fixture
def cuda_device() -> torch.device:
    """The CUDA device; the test is skipped on machines without one."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return torch.device("cuda")
