"""``freqlens evaluate``: results.json + table.md with every requested method and its * row; user errors."""

from __future__ import annotations

import json

import pytest

from freqlens.attribution.registry import METHOD_NAMES
from freqlens.cli import main

FAST = ["--steps", "5", "--samples", "16", "--calibration", "4", "--quiet"]


def test_evaluate_writes_results_and_table(checkpoints, tmp_path):
    out = tmp_path / "out"
    methods = ["saliency", "gradient_input", "occlusion"]
    code = main(["evaluate", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist",
                 "--methods", ",".join(methods), "--n-images", "8", "--forgrad", "auto", *FAST, "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [m["method"] for m in results["methods"]] == methods
    assert [m["method"] for m in results["forgrad"]] == methods
    assert results["sigma_source"] == "calibration" and results["calibration_images"] == 4
    assert results["forgrad_setting"] == "auto" and results["n_images"] == 8
    for row in results["methods"] + results["forgrad"]:
        assert len(row["metrics"]["mufidelity"]["values"]) == 8
        score = row["metrics"]["score"]["mean"]
        m = row["metrics"]
        assert score == pytest.approx(m["insertion"]["mean"] + m["mufidelity"]["mean"] - m["deletion"]["mean"])
    assert results["forgrad_mode"] == "magnitude"  # the published pipeline by default
    for row in results["forgrad"]:
        assert row["sigma"] == row["sigma_search"]["sigma_star"] in row["sigma_search"]["sigmas"]
        search = row["sigma_search"]
        assert search["mode"] == "magnitude" and isinstance(search["significant"], bool)
        assert len(search["intervals"]) == len(search["gain_over_unfiltered"]) == len(search["sigmas"])
    costs = {m["method"]: m["cost"] for m in results["methods"]}
    assert (costs["saliency"]["forward_per_image"], costs["saliency"]["backward_per_image"]) == (1, 1)
    assert costs["occlusion"]["forward_per_image"] == 1 + 13 * 13  # 4-px patches, stride 2, at 28 px
    assert sorted(results["ranking"]["original"]) == sorted(methods)
    table = (out / "table.md").read_text()
    for name in methods:
        assert f"| {name} |" in table and f"| {name}* (σ=" in table


def test_evaluate_all_skips_gradcam_without_conv(checkpoints, tmp_path, capsys):
    out = tmp_path / "mlp"
    code = main(["evaluate", "--checkpoint", str(checkpoints["mlp"]), "--dataset", "demo-mnist", "--methods", "all",
                 "--n-images", "2", "--forgrad", "none", "--steps", "2", "--samples", "4", "--quiet",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    evaluated = {m["method"] for m in results["methods"]}
    assert evaluated == set(METHOD_NAMES) - {"gradcam", "gradcam_pp"}
    assert {s.split(":")[0] for s in results["skipped"]} == {"gradcam", "gradcam_pp"}
    assert results["forgrad"] == [] and "skipped gradcam" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--methods", "saliency,no-such-method"], "unknown attribution method"),
        (["--methods", "gradcam"], "gradcam"),
        (["--n-images", "5000"], "images"),
    ],
)
def test_evaluate_user_errors(checkpoints, tmp_path, capsys, flags, fragment):
    code = main(["evaluate", "--checkpoint", str(checkpoints["mlp"]), "--dataset", "demo-mnist", *flags, *FAST,
                 "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]
    assert not (tmp_path / "o" / "results.json").exists()


def test_evaluate_forgrad_mode_is_recorded_and_changes_the_maps(checkpoints, tmp_path):
    results = {}
    for mode in ("magnitude", "signed"):
        out = tmp_path / mode
        assert main(["evaluate", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist",
                     "--methods", "gradient_input", "--n-images", "4", "--forgrad", "3", "--forgrad-mode", mode,
                     *FAST, "--out", str(out)]) == 0
        results[mode] = json.loads((out / "results.json").read_text())
        assert results[mode]["forgrad_mode"] == mode
    # both the * rows and the original rows they are paired with use the mode's maps
    for key in ("methods", "forgrad"):
        values = [results[mode][key][0]["metrics"]["deletion"]["values"] for mode in ("magnitude", "signed")]
        assert values[0] != pytest.approx(values[1])
    out = tmp_path / "off"
    assert main(["evaluate", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist", "--methods",
                 "gradient_input", "--n-images", "4", "--forgrad", "none", *FAST, "--out", str(out)]) == 0
    off = json.loads((out / "results.json").read_text())
    assert off["forgrad_mode"] is None  # no FORGrad maps: the rows are the explainer's own maps
    assert off["methods"][0]["metrics"]["deletion"]["values"] == pytest.approx(
        results["signed"]["methods"][0]["metrics"]["deletion"]["values"])
