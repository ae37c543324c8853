"""Helpers for the ``torchrun`` tests: a free port, the launcher command, a tiny LeNet checkpoint.

Every process runs with one thread (``OMP_NUM_THREADS=1``): the CI machine has two cores.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BIN = Path(sys.executable).parent
TIMEOUT = 60  # FREQLENS_DIST_TIMEOUT of the launched jobs, seconds (generous: the CI machine is loaded)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def torchrun_command(nproc: int, *freqlens_args: str) -> list[str]:
    """``torchrun --nproc_per_node=N --no-python freqlens ARGS`` on a free local port."""
    return [str(BIN / "torchrun"), f"--nproc_per_node={nproc}", "--nnodes=1", "--max_restarts=0",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}", "--no-python", str(BIN / "freqlens"),
            *freqlens_args]


def job_env(timeout: float = TIMEOUT) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", FREQLENS_DIST_TIMEOUT=str(timeout))
    env.pop("WORLD_SIZE", None)
    return env


def run_torchrun(nproc: int, *freqlens_args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(torchrun_command(nproc, *freqlens_args), check=False, env=job_env(),
                            capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"torchrun failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session", autouse=True)
def _needs_torchrun():
    if not (BIN / "torchrun").exists() or not (BIN / "freqlens").exists():
        pytest.skip("torchrun or the freqlens script is not installed next to the interpreter")
    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")


@pytest.fixture(scope="session")
def lenet_checkpoint(tmp_path_factory) -> Path:
    """An untrained LeNet for 28-px grey digits (seeded)."""
    from freqlens.models import build, save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoint") / "lenet.pt"
    save_model(build("lenet", in_channels=1, num_classes=10), path)
    return path
