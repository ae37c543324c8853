"""``freqlens explain`` and ``freqlens attack`` under ``torchrun``: the files of one process."""

from __future__ import annotations

import json

import torch

from freqlens.cli import main

from .conftest import run_torchrun


def _single(args: list[str]) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)


def test_explain_two_processes(lenet_checkpoint, tmp_path):
    # SmoothGrad: stochastic, so its noise must follow the work units, not the ranks; 3 units of 4, 4, 2
    args = ["explain", "--checkpoint", str(lenet_checkpoint), "--dataset", "demo-mnist", "--method", "smoothgrad",
            "--forgrad", "auto", "--calibration", "4", "--n-images", "10", "--shard-size", "4", "--grid-size", "10",
            "--target", "label"]
    _single([*args, "--out", str(tmp_path / "one")])
    run_torchrun(2, *args, "--out", str(tmp_path / "two"))
    one = torch.load(tmp_path / "one" / "maps.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "maps.pt", weights_only=True)
    assert one["maps"].shape == (10, 1, 28, 28) and one["sigma"] == two["sigma"]
    for key in ("maps", "forgrad_maps"):
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=1e-5)
    assert torch.equal(one["target"], two["target"])
    summary_one = json.loads((tmp_path / "one" / "explain.json").read_text())
    summary_two = json.loads((tmp_path / "two" / "explain.json").read_text())
    assert (summary_one.pop("processes"), summary_two.pop("processes")) == (1, 2)
    assert summary_one == summary_two  # the σ* search included


def test_attack_two_processes(lenet_checkpoint, tmp_path):
    # PGD with a random start; 48 images in 3 units of 16, so rank 0 computes two and rank 1 one
    args = ["attack", "--checkpoint", str(lenet_checkpoint), "--dataset", "demo-mnist", "--attack", "pgd",
            "--eps", "0.1", "--steps", "3", "--n-images", "48", "--shard-size", "16", "--quiet"]
    _single([*args, "--out", str(tmp_path / "one")])
    run_torchrun(2, *args, "--out", str(tmp_path / "two"))
    one = json.loads((tmp_path / "one" / "attack.json").read_text())
    two = json.loads((tmp_path / "two" / "attack.json").read_text())
    assert (one.pop("processes"), two.pop("processes")) == (1, 2)
    assert one.keys() == two.keys()
    for key, value in one.items():
        if isinstance(value, float):
            assert abs(two[key] - value) <= 1e-5 * max(1.0, abs(value)), key
        elif key != "rct":
            assert two[key] == value, key
    maps_one = torch.load(tmp_path / "one" / "rct.pt", weights_only=True)
    maps_two = torch.load(tmp_path / "two" / "rct.pt", weights_only=True)
    torch.testing.assert_close(maps_two["rct"], maps_one["rct"], atol=1e-5, rtol=1e-5)
    for key in ("labels", "clean_correct", "adversarial_correct"):
        assert torch.equal(maps_two[key], maps_one[key]), key
