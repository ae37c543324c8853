"""``freqlens explain``: maps saved, FORGrad applied as asked, σ* searched on held-out images."""

from __future__ import annotations

import json

import pytest
import torch

from freqlens.cli import main
from freqlens.data import load_dataset, pick_indices
from freqlens.spectral import lowpass


def test_explain_fixed_sigma(checkpoints, tmp_path):
    out = tmp_path / "out"
    code = main(["explain", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo", "--method", "saliency",
                 "--forgrad", "4", "--n-images", "20", "--grid-size", "16", "--target", "label", "--out", str(out)])
    assert code == 0
    saved = torch.load(out / "maps.pt", weights_only=True)
    assert saved["maps"].shape == (20, 1, 28, 28)
    test = load_dataset("demo", "test")
    assert torch.equal(saved["target"], test.labels[pick_indices(len(test), 20, seed=0)])
    torch.testing.assert_close(saved["forgrad_maps"], lowpass(saved["maps"], 4.0, "box"))
    summary = json.loads((out / "explain.json").read_text())
    assert summary["figures"] == ["grid_000.png", "grid_001.png"]
    assert all((out / name).read_bytes()[:4] == b"\x89PNG" for name in summary["figures"])


def test_explain_auto_sigma_records_the_search(checkpoints, tmp_path):
    out = tmp_path / "auto"
    assert main(["explain", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo", "--method", "gxi",
                 "--forgrad", "auto", "--calibration", "8", "--n-images", "4", "--out", str(out)]) == 0
    summary = json.loads((out / "explain.json").read_text())
    search = summary["sigma_search"]
    assert summary["sigma"] == search["sigma_star"] in search["sigmas"]
    best = max(range(len(search["sigmas"])), key=lambda i: search["insertion_minus_deletion"][i])
    assert search["insertion_minus_deletion"][best] == pytest.approx(
        search["insertion_minus_deletion"][search["sigmas"].index(search["sigma_star"])])
    assert summary["method"] == "gradient_input"


@pytest.mark.parametrize("method, fragment", [("no-such-method", "unknown attribution method"), ("gradcam", "gradcam")])
def test_explain_user_errors(checkpoints, tmp_path, capsys, method, fragment):
    code = main(["explain", "--checkpoint", str(checkpoints["mlp"]), "--dataset", "demo", "--method", method,
                 "--n-images", "2", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]
