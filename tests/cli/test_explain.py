"""``freqlens explain``: maps saved, FORGrad applied as asked, σ* searched on held-out images."""

from __future__ import annotations

import json

import pytest
import torch

from freqlens.attribution import forgrad_filter
from freqlens.cli import main
from freqlens.data import load_dataset, pick_indices
from freqlens.spectral import lowpass


def test_explain_fixed_sigma(checkpoints, tmp_path):
    out = tmp_path / "out"
    code = main(["explain", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist", "--method", "saliency",
                 "--forgrad", "4", "--n-images", "20", "--grid-size", "16", "--target", "label", "--out", str(out)])
    assert code == 0
    saved = torch.load(out / "maps.pt", weights_only=True)
    assert saved["maps"].shape == (20, 1, 28, 28)
    test = load_dataset("demo-mnist", "test")
    assert torch.equal(saved["target"], test.labels[pick_indices(len(test), 20, seed=0)])
    # the default pipeline is the published magnitude one: |lowpass(|channel mean|)|
    torch.testing.assert_close(saved["forgrad_maps"], forgrad_filter(saved["maps"], 4.0, "box", "magnitude"))
    summary = json.loads((out / "explain.json").read_text())
    assert saved["mode"] == summary["forgrad_mode"] == "magnitude"
    assert summary["figures"] == ["grid_000.png", "grid_001.png"]
    assert all((out / name).read_bytes()[:4] == b"\x89PNG" for name in summary["figures"])


def test_explain_auto_sigma_records_the_search(checkpoints, tmp_path):
    out = tmp_path / "auto"
    assert main(["explain", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist", "--method", "gxi",
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
    code = main(["explain", "--checkpoint", str(checkpoints["mlp"]), "--dataset", "demo-mnist", "--method", method,
                 "--n-images", "2", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]


def test_explain_forgrad_mode_reaches_the_maps(checkpoints, tmp_path):
    saved, summaries = {}, {}
    for mode in ("magnitude", "signed"):
        out = tmp_path / mode
        assert main(["explain", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist", "--method",
                     "gradient_input", "--forgrad", "auto", "--forgrad-mode", mode, "--calibration", "4",
                     "--n-images", "4", "--out", str(out)]) == 0
        saved[mode] = torch.load(out / "maps.pt", weights_only=True)
        summaries[mode] = json.loads((out / "explain.json").read_text())
        assert saved[mode]["mode"] == summaries[mode]["forgrad_mode"] == mode
        search = summaries[mode]["sigma_search"]
        assert search["mode"] == mode and search["sigma_star"] == summaries[mode]["sigma"]
        assert len(search["intervals"]) == len(search["gain_over_unfiltered"]) == len(search["sigmas"])
        assert isinstance(search["significant"], bool)
    torch.testing.assert_close(saved["magnitude"]["maps"], saved["signed"]["maps"])  # same base maps
    base = saved["signed"]["maps"]
    for mode in ("magnitude", "signed"):
        sigma = summaries[mode]["sigma"]
        torch.testing.assert_close(saved[mode]["forgrad_maps"], forgrad_filter(base, sigma, "box", mode))
    torch.testing.assert_close(saved["signed"]["forgrad_maps"], lowpass(base, summaries["signed"]["sigma"], "box"))
    # the two pipelines give different maps (signed Grad × Input has negative values, magnitude none)
    assert bool((saved["magnitude"]["forgrad_maps"] >= 0).all()) and bool((saved["signed"]["forgrad_maps"] < 0).any())
    fixed = {}
    for mode in ("magnitude", "signed"):
        out = tmp_path / f"fixed-{mode}"
        assert main(["explain", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist", "--method",
                     "gradient_input", "--forgrad", "3", "--forgrad-mode", mode, "--n-images", "2",
                     "--out", str(out)]) == 0
        fixed[mode] = torch.load(out / "maps.pt", weights_only=True)["forgrad_maps"]
    assert not torch.allclose(fixed["magnitude"], fixed["signed"].abs(), atol=1e-6)


def test_explain_rejects_an_unknown_forgrad_mode(checkpoints, tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        main(["explain", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist", "--method", "saliency",
              "--forgrad", "3", "--forgrad-mode", "absolute", "--out", str(tmp_path / "o")])
    assert error.value.code == 2 and "--forgrad-mode" in capsys.readouterr().err


def test_explain_method_help_lists_the_registry():
    """The names in ``--method``'s help are the registry's (no list kept by hand)."""
    import argparse

    from freqlens.attribution.registry import METHOD_NAMES
    from freqlens.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    method = next(a for a in commands.choices["explain"]._actions if "--method" in a.option_strings)
    assert method.help == ", ".join(METHOD_NAMES)
