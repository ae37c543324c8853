"""``--method-args`` of ``freqlens explain`` and ``freqlens evaluate`` (the explainers' settings reach them,
per method in evaluate, unknown keys refused with the accepted ones) and the planned-passes line.

Runs on the zoo's CIFAR-10 LeNet and the shipped CIFAR-10 sample (``demo``): nothing to train."""

from __future__ import annotations

import json

import pytest
import torch

from freqlens.attribution import IntegratedGradients, Occlusion
from freqlens.cli import main
from freqlens.commands._common import pick_images
from freqlens.data import load_dataset
from freqlens.models import load

MODEL = ["--checkpoint", "zoo:lenet-cifar10-standard", "--dataset", "demo"]
FAST = ["--steps", "3", "--samples", "8", "--forgrad", "none"]


def _explained_images(count: int):
    return pick_images(load_dataset("demo", "test"), count, 0, torch.device("cpu"))[0]


def test_explain_method_args_reach_the_explainer(tmp_path, capsys):
    out = tmp_path / "occlusion"
    assert main(["explain", *MODEL, "--method", "occlusion", "--method-args", "patch=8", "stride=4",
                 "--n-images", "4", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "freqlens: occlusion: 50 forward passes per image, 200 in all" in err  # 1 + 7² at 32 px
    saved = torch.load(out / "maps.pt", weights_only=True)
    model = load("zoo:lenet-cifar10-standard")
    expected = Occlusion(model, patch=8, stride=4)(_explained_images(4), saved["target"])
    torch.testing.assert_close(saved["maps"], expected)
    summary = json.loads((out / "explain.json").read_text())
    assert summary["method_args"] == {"patch": 8, "stride": 4}
    assert summary["planned_passes"] == {"forward_per_image": 50, "backward_per_image": 0, "images": 4,
                                         "forward": 200, "backward": 0}

    out = tmp_path / "ig"  # the METHOD.KEY form is accepted for the explained method too; --quiet: no line
    assert main(["explain", *MODEL, "--method", "ig", "--method-args", "ig.steps=6", "method=riemann_left",
                 "--n-images", "3", "--quiet", "--out", str(out)]) == 0
    assert "passes" not in capsys.readouterr().err
    saved = torch.load(out / "maps.pt", weights_only=True)
    expected = IntegratedGradients(model, steps=6, method="riemann_left")(_explained_images(3), saved["target"])
    torch.testing.assert_close(saved["maps"], expected)


def test_explain_planned_passes_with_defaults_and_calibration(tmp_path, capsys):
    assert main(["explain", *MODEL, "--method", "integrated_gradients", "--forgrad", "auto", "--calibration", "2",
                 "--n-images", "2", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    # 50 steps on the 2 explained and the 2 held-out images of the σ search
    assert "freqlens: integrated_gradients: 50 forward and 50 backward passes per image, 200 and 200 in all" in err


@pytest.mark.parametrize("items, fragment", [
    (["n_masks=10"], ("--method-args: occlusion does not take the setting 'n_masks'; its settings: patch, stride, "
                     "baseline, score")),
    (["patch"], "is not KEY=VALUE"),
    (["rise.n_masks=10"], "'rise.n_masks' is for rise, which is not among the methods (occlusion)"),
    (["patch=0"], "occlusion: patch must be a positive int"),
])
def test_explain_bad_method_args(tmp_path, capsys, items, fragment):
    code = main(["explain", *MODEL, "--method", "occlusion", "--method-args", *items, "--n-images", "2",
                 "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def test_evaluate_method_args_per_method_and_plain(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", *MODEL, "--methods", "ig,rise,occlusion", "--method-args", "rise.n_masks=20",
                 "steps=4", "score=prob", "occlusion.score=logit", "--n-images", "2", *FAST,
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "freqlens: integrated_gradients: 4 forward and 4 backward passes per image, 8 and 8 in all" in err
    assert "freqlens: rise: 20 forward passes per image, 40 in all" in err
    assert "freqlens: occlusion: 226 forward passes per image, 452 in all" in err  # scaled default at 32 px
    results = json.loads((out / "results.json").read_text())
    assert results["method_args"] == {
        "integrated_gradients": {"steps": 4, "score": "prob"},
        "rise": {"n_masks": 20, "score": "prob"},
        "occlusion": {"score": "logit"},  # the per-method form wins
    }
    costs = {row["method"]: row["cost"] for row in results["methods"]}
    assert costs["rise"]["forward_per_image"] == 20
    assert (costs["integrated_gradients"]["forward_per_image"], costs["integrated_gradients"]["backward_per_image"]) \
        == (4, 4)
    for name, plan in results["planned_passes"].items():  # planned = counted
        assert plan["forward_per_image"] == costs[name]["forward_per_image"]
        assert plan["backward_per_image"] == costs[name]["backward_per_image"]


@pytest.mark.parametrize("flags, fragment", [
    (["--methods", "ig,rise", "--method-args", "patch=4"],
     ("no method among integrated_gradients, rise takes the setting 'patch'; their settings: integrated_gradients: "
     "baseline, steps, method, score; rise: n_masks, grid, p, score, baseline")),
    (["--methods", "ig,rise", "--method-args", "rise.steps=4"], "rise does not take the setting 'steps'"),
    (["--methods", "ig", "--method-args", "sobol.grid=3"], "'sobol.grid' is for sobol, which is not among"),
    (["--methods", "all", "--method-args", "rise.n_masks=-3"], "rise: n_masks must be a positive int"),
])
def test_evaluate_bad_method_args(tmp_path, capsys, flags, fragment):
    code = main(["evaluate", *MODEL, *flags, "--n-images", "2", *FAST, "--quiet", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / "o" / "results.json").exists()
