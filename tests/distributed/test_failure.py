"""A rank that dies or hangs: the job stops non-zero within the configured timeout, the last
checkpoint stays intact, and ``--resume`` under torchrun continues from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import torch

from freqlens.models import load

from .conftest import job_env, run_torchrun, torchrun_command

ARGS = ["train", "--dataset", "demo-mnist", "--model", "mlp", "--max-batches", "4", "--batch-size", "32", "--quiet"]
MARGIN = 20  # seconds for torchrun to notice and stop the job on a loaded machine
TIMEOUT = 8  # FREQLENS_DIST_TIMEOUT of these jobs, seconds


def _workers(launcher: subprocess.Popen) -> dict[int, int]:
    """rank -> pid of the worker processes of a torchrun launcher (read from /proc)."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    ranks = {}
    for pid in map(int, children):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        rank = next(entry[5:] for entry in environ if entry.startswith(b"RANK="))
        ranks[int(rank)] = pid
    return ranks


def _running(pid: int) -> bool:
    """Is ``pid`` alive (not gone, not a zombie)?"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _start_long_run(out: Path) -> tuple[subprocess.Popen, dict[int, int]]:
    """A 2-process training run of many short epochs, returned once its first checkpoint exists."""
    launcher = subprocess.Popen(torchrun_command(2, *ARGS, "--epochs", "500", "--out", str(out)),
                                env=job_env(TIMEOUT),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "history.json").exists():
        assert launcher.poll() is None, launcher.communicate()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.1)
    return launcher, _workers(launcher)


def _check_last_checkpoint(out: Path) -> int:
    """last.pt loads as a model and as a resumable state; returns its epoch."""
    load(out / "last.pt")
    load(out / "best.pt")
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] >= 1 and len(state["history"]) == state["epoch"]
    return int(state["epoch"])


def test_killed_rank_stops_the_job_and_resume_continues(tmp_path):
    out = tmp_path / "run"
    launcher, ranks = _start_long_run(out)
    os.kill(ranks[1], signal.SIGKILL)
    killed = time.monotonic()
    try:
        _, err = launcher.communicate(timeout=TIMEOUT + MARGIN)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert time.monotonic() - killed < TIMEOUT + MARGIN
    assert "FAILED" in err
    epoch = _check_last_checkpoint(out)
    saved_history = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["history"]

    run_torchrun(2, *ARGS, "--epochs", str(epoch + 1), "--resume", "--out", str(out))
    history = json.loads((out / "history.json").read_text())
    assert [entry["epoch"] for entry in history] == list(range(1, epoch + 2))
    assert history[:epoch] == saved_history  # the complete epochs are kept, the next one is added


def test_hung_rank_times_out_with_a_clear_message(tmp_path):
    out = tmp_path / "run"
    launcher, ranks = _start_long_run(out)
    os.kill(ranks[1], signal.SIGSTOP)  # alive but silent: only the timeout can stop rank 0
    stopped = time.monotonic()
    try:
        while _running(ranks[0]):
            assert time.monotonic() - stopped < TIMEOUT + MARGIN, "rank 0 did not time out"
            time.sleep(0.2)
        waited = time.monotonic() - stopped
    finally:
        os.kill(ranks[1], signal.SIGCONT)  # let torchrun's SIGTERM reach it
    _, err = launcher.communicate(timeout=MARGIN + 40)
    assert launcher.returncode != 0
    assert TIMEOUT - 1 < waited < TIMEOUT + MARGIN
    assert "rank 0/2: lost the other processes" in err and "FREQLENS_DIST_TIMEOUT" in err
    _check_last_checkpoint(out)
