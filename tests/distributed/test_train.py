"""``freqlens train`` under ``torchrun``: data-parallel training that follows the single-process run."""

from __future__ import annotations

import json

import pytest
import torch

from freqlens.cli import main
from freqlens.models import load

from .conftest import run_torchrun

# batch 63: 2,000 demo images = 31 batches of 63 (shares 32 + 31) and a last one of 47 (24 + 23), so the
# uneven shares and the loss scaling that makes them add up to the global-batch mean are exercised
ARGS = ["train", "--dataset", "demo-mnist", "--model", "mlp", "--epochs", "1", "--batch-size", "63", "--seed", "3",
        "--vii", "--quiet"]


def _single(out) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*ARGS, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)


def test_two_processes_follow_the_single_process_run(tmp_path):
    _single(tmp_path / "one")
    run_torchrun(2, *ARGS, "--out", str(tmp_path / "two"))

    # one set of files, written once (no leftovers of the atomic writes, no per-rank copies)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["best.pt", "history.json", "last.pt"]
    one = json.loads((tmp_path / "one" / "history.json").read_text())
    two = json.loads((tmp_path / "two" / "history.json").read_text())
    assert len(one) == len(two) == 1
    assert two[0]["train_loss"] == pytest.approx(one[0]["train_loss"], rel=0.02)
    assert two[0]["val_loss"] == pytest.approx(one[0]["val_loss"], rel=0.02)
    assert two[0]["val_accuracy"] == pytest.approx(one[0]["val_accuracy"], abs=0.004)  # 2 of 500 images
    assert two[0]["val_vii"] == pytest.approx(one[0]["val_vii"], rel=0.02)  # sharded over the ranks, then summed
    # stronger: same global batches and a gradient of the global mean loss -> the same weights up to rounding
    weights_one = load(tmp_path / "one" / "last.pt").state_dict()
    weights_two = load(tmp_path / "two" / "last.pt").state_dict()
    for key, value in weights_one.items():
        torch.testing.assert_close(weights_two[key], value, atol=1e-4, rtol=1e-4, msg=key)
    saved = torch.load(tmp_path / "two" / "last.pt", map_location="cpu", weights_only=True)
    assert saved["train_config"]["world_size"] == 2 and saved["epoch"] == 1
    assert "world_size" not in torch.load(tmp_path / "one" / "last.pt", weights_only=True)["train_config"]


def test_global_batch_must_leave_two_images_per_process(monkeypatch, tmp_path):
    """Checked before any collective operation, so shown here with a pretended world of 2."""
    from freqlens import distributed
    from freqlens.data import load_dataset
    from freqlens.models import build
    from freqlens.training import TrainingConfigError, train

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    data = load_dataset("demo-mnist", "test").subset(range(8))
    with pytest.raises(TrainingConfigError, match="batch_size=3 is the global batch"):
        train(build("mlp", in_channels=1, num_classes=10), data, batch_size=3, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "last.pt").exists()
