"""``freqlens analyze NAME``: every analysis writes its JSON and figures; user errors exit 2."""

from __future__ import annotations

import json

import pytest

from freqlens.cli import main


@pytest.mark.parametrize(
    "analysis, extra",
    [
        ("footprints", ["--methods", "saliency,occlusion"]),
        ("linearization", []),
        ("layer-hf", []),
        ("occluded-frequency", []),
        ("attack-spectra", []),
        ("robust-dataset", ["--steps", "5"]),
    ],
)
def test_analysis_writes_json_and_figures(checkpoints, tmp_path, analysis, extra):
    out = tmp_path / analysis
    code = main(["analyze", analysis, "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist",
                 "--n-images", "4", "--out", str(out), *extra])
    assert code == 0
    summary = json.loads((out / f"{analysis.replace('-', '_')}.json").read_text())
    assert summary["analysis"] == analysis and summary["n_images"] == 4
    assert summary["figures"]
    for name in summary["figures"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_occluded_frequency_profile_has_one_value_per_band(checkpoints, tmp_path):
    assert main(["analyze", "occluded-frequency", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist",
                 "--n-images", "3", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "occluded_frequency.json").read_text())
    assert summary["bands"] == 28 + 28 - 1
    assert len(summary["per_image"]) == 3 and all(len(row) == 55 for row in summary["per_image"])


def test_attribution_shift_compares_two_checkpoints(checkpoints, tmp_path):
    assert main(["analyze", "attribution-shift", "--checkpoint", str(checkpoints["lenet"]), "--compare",
                 str(checkpoints["mlp"]), "--dataset", "demo-mnist", "--n-images", "6", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "attribution_shift.json").read_text())
    assert 0.0 <= summary["mean_natural_low_band_share"] <= 1.0
    assert all(len(c["robust_profile"]) == 55 for c in summary["classes"].values())
    assert main(["analyze", "attribution-shift", "--checkpoint", str(checkpoints["lenet"]), "--dataset", "demo-mnist",
                 "--out", str(tmp_path)]) == 2  # --compare missing


def test_analyze_user_errors(checkpoints, tmp_path, capsys):
    code = main(["analyze", "footprints", "--checkpoint", str(checkpoints["mlp"]), "--dataset", "demo-mnist",
                 "--methods", "gradcam", "--n-images", "2", "--out", str(tmp_path)])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("freqlens: error:")
    code = main(["analyze", "footprints", "--checkpoint", str(tmp_path / "missing.pt"), "--dataset", "demo-mnist",
                 "--out", str(tmp_path)])
    assert code == 2
