"""Shared fixtures.

``shared_data``: the test and benchmark data of ``../shared/data`` (see its README). Tests that need it
skip with a clear reason when it is absent (a user's clone has no ``../shared``); CI always has it.
Set ``FREQLENS_SHARED_DATA`` to point elsewhere. Tests run with ``OMP_NUM_THREADS=1`` unless it is set.
"""

from __future__ import annotations

import os
from pathlib import Path

# One intra-op thread per process unless the caller chose: the models under test are tiny, and on a busy
# 2-core machine torch's default (one thread per core) oversubscribes the CPU and runs 10-100x slower.
# Subprocesses (CLI tests, torchrun) inherit it.
os.environ["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or "1"

import pytest
import torch

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("FREQLENS_SHARED_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = _shared_data_dir()
    if not (path / "README.md").is_file():
        pytest.skip(f"shared test data not found at {path} (set FREQLENS_SHARED_DATA); skipping")
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
