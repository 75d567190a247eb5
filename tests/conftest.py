"""Shared fixtures. `shared_data` points at ../shared/data (real CIFAR-10 and the NB201 table).

On a developer's machine without ../shared the tests that need it are skipped; in CI (CI=true)
its absence is a failure, so those tests can never silently stop running there.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# The suite's tensors are tiny: one intra-op thread avoids thread start-up and contention costs
# that dominate at this size (about 10x on a busy 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the shared data folder at {SHARED_DATA}")
        pytest.skip(f"no shared data folder at {SHARED_DATA}")
    return SHARED_DATA
