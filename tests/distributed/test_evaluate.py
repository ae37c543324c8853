"""``freqlens evaluate`` under ``torchrun``: the same ``results.json`` numbers as one process."""

from __future__ import annotations

import json

import pytest
import torch

from freqlens.cli import main

from .conftest import run_torchrun

# one deterministic method and one stochastic one (SmoothGrad: its noise must not depend on the sharding)
ARGS = ["evaluate", "--dataset", "demo-mnist", "--methods", "saliency,smoothgrad", "--n-images", "32",
        "--steps", "5", "--samples", "16", "--calibration", "4", "--forgrad", "auto", "--quiet"]


def _numbers(results: dict) -> dict:
    """Every per-image metric value, σ and σ-search score of results.json (timings excluded)."""
    numbers = {}
    for row in results["methods"] + results["forgrad"]:
        key = row["method"] + ("*" if row["forgrad"] else "")
        for metric, entry in row["metrics"].items():
            numbers[f"{key}/{metric}"] = entry["values"] + [entry["mean"], entry["std"]]
        numbers[f"{key}/passes"] = [row["cost"]["forward_per_image"], row["cost"]["backward_per_image"]]
        if row["forgrad"]:
            numbers[f"{key}/sigma"] = [row["sigma"], *row["sigma_search"]["insertion_minus_deletion"]]
    return numbers


def test_two_processes_give_the_single_process_results(lenet_checkpoint, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*ARGS, "--checkpoint", str(lenet_checkpoint), "--out", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    run_torchrun(2, *ARGS, "--checkpoint", str(lenet_checkpoint), "--out", str(tmp_path / "two"))

    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["ranking"] == two["ranking"]
    a, b = _numbers(one), _numbers(two)
    assert a.keys() == b.keys() and len(a["saliency/deletion"]) == 32 + 2
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-5, rel=1e-5), key
    # the per-image values really differ from image to image (a wrong gather order would be caught)
    assert len(set(a["saliency/insertion"][:32])) > 16
    # written once, by rank 0: no temporary files left beside the results
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["results.json", "table.md"]
