"""Shared fixtures. Tests are seeded; tolerances are stated where statistics are compared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(
    os.environ.get("IVI_RL_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
"""The benchmark data: $IVI_RL_DATA when set, else ../shared/data beside the checkout. Tests
that need it skip (saying which folder they looked in) when it is missing."""


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mushroom" / "agaricus-lepiota.data").exists():
        pytest.skip(f"no benchmark data in {SHARED_DATA} (set IVI_RL_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _sb3_log_folder(tmp_path_factory):
    """SB3's default logger makes a new folder in the system temp dir at every ``learn`` that
    has no logger set; the tests' go into one pytest temp folder instead."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
        yield


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
