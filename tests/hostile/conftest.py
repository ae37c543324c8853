"""Shared pieces of the hostile-input tests: an untrained LeNet checkpoint (the commands below fail on
their output folder or a hostile file, so the model's quality does not matter) and the check of the
command line's one-line error."""

from __future__ import annotations

import pytest
import torch

from freqlens.models import build, save_model


@pytest.fixture(scope="session")
def lenet_checkpoint(tmp_path_factory):
    """An untrained LeNet for 28×28 grey images and 10 classes (the demo data)."""
    torch.manual_seed(0)
    return save_model(build("lenet", in_channels=1, num_classes=10), tmp_path_factory.mktemp("ckpt") / "lenet.pt")


def one_error_line(capsys) -> str:
    """The single ``freqlens: error:`` line the last command printed on stderr (asserted: one line, no
    traceback, no Python exception name)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("freqlens: error: "), err
    assert "Traceback" not in err and "Error:" not in lines[0].split("freqlens: error: ", 1)[1], err
    return lines[0]
