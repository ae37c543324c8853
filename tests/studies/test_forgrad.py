"""The FORGrad study (seed 001) at a tiny scale: schema, figures, claims recomputed from the raw numbers,
cached rerun, config validation and FORGrad-specific invariants."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from freqlens.errors import FreqlensError
from freqlens.studies.base import load_config
from freqlens.studies.forgrad import STUDY, ForgradConfig, compute_claim_numbers, run_forgrad

from .contract import PNG_SIGNATURE, check_study_contract

MODELS = ("resnet_small", "vit_tiny", "convnext_tiny")
TINY = dataclasses.replace(
    ForgradConfig(), epochs=1, n_train=300, n_images=4, n_calibration=4, steps=4, mufidelity_samples=8, n_sigmas=3,
    methods="saliency,gradient_input,gradcam,occlusion", n_dirs=4, radii="0.1,1",
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    path = run_forgrad(tmp_path_factory.mktemp("run1"), TINY, cache_dir=cache, progress=False)
    return cache, path, json.loads(path.read_text())


def test_results_schema(study):
    _, path, results = study
    check_study_contract(path, results, STUDY, TINY)
    assert set(results["models"]) == set(MODELS)
    table1 = results["tables"][0]["rows"]
    # Grad-CAM needs convolutions: "n.a." on the ViT (seed 001 Table 1), a row and a * row elsewhere
    (vit_gradcam,) = [row for row in table1 if row[:2] == ["vit_tiny", "gradcam"]]
    assert vit_gradcam[2] == "n.a." and not any(row[:2] == ["vit_tiny", "gradcam*"] for row in table1)
    assert results["models"]["vit_tiny"]["not applicable"] == ["gradcam"]
    assert any(row[:2] == ["resnet_small", "gradcam*"] for row in table1)
    assert len(results["claims"]) == 8


def test_per_model_figures(study):
    _, _, results = study
    listed = {figure["file"] for figure in results["figures"]}
    assert {f"layer_hf_{m}.png" for m in MODELS} <= listed and {f"linearization_{m}.png" for m in MODELS} <= listed


def test_claims_hold_iff_their_numbers_compare(study):
    _, _, results = study
    by_figure_text = {claim["claim"]: claim for claim in results["claims"]}
    numbers = compute_claim_numbers(results, TINY)
    assert [(c["left"], c["right"]) for c in by_figure_text.values()] == [tuple(v) for v in numbers.values()]


def test_claims_recomputed_from_raw_measures(study):
    """Independent recomputation: per-image Table-1 values and the linearization residuals."""
    _, _, results = study
    claims = results["claims"]
    starred, original = [], []
    for name in MODELS:
        ranking = results["models"][name]["ranking"]
        for row, star in zip(ranking["methods"], ranking["forgrad"], strict=True):
            assert row["method"] == star["method"]
            if row["family"] == "gradient":
                values, star_values = row["metrics"]["score"]["values"], star["metrics"]["score"]["values"]
                original.append(sum(values) / len(values))
                starred.append(sum(star_values) / len(star_values))
    assert claims[1]["left"] == pytest.approx(sum(starred) / len(starred), rel=1e-12)
    assert claims[1]["right"] == pytest.approx(sum(original) / len(original), rel=1e-12)

    logs = []
    for name in MODELS:
        lin = results["models"][name]["linearization"]
        half = lin["residual"][lin["fractions"].index(TINY.claim_fraction)]
        logs += [math.log(a / b) for a, b in zip(half, lin["residual"][-1])]
    assert claims[4]["left"] == pytest.approx(math.exp(sum(logs) / len(logs)), rel=1e-9)

    footprints = results["footprints"]["methods"]
    gradient = [m["hf_power_ratio"]["mean"] for m in footprints.values() if m["family"] == "gradient"]
    assert claims[0]["left"] == pytest.approx(sum(gradient) / len(gradient))


def test_forgrad_invariants(study):
    """σ* is the first argmax of I − D over the grid; a * row at the Nyquist σ is the identity filter, so its
    faithfulness equals the original row's; HF ratios are shares in [0, 1]."""
    _, _, results = study
    for name in MODELS:
        entry = results["models"][name]
        search = entry["sigma_search"]
        scores = search["insertion_minus_deletion"]
        assert search["sigma_star"] == search["sigmas"][scores.index(max(scores))]
        assert scores == pytest.approx([i - d for i, d in zip(search["insertion"], search["deletion"])])
        assert search["sigmas"][-1] == search["nyquist"] == 14.0
        ranking = entry["ranking"]
        for row, star in zip(ranking["methods"], ranking["forgrad"]):
            assert star["sigma"] in search["sigmas"]
            if star["sigma"] == search["nyquist"]:
                for metric in ("deletion", "insertion", "mufidelity"):
                    assert star["metrics"][metric]["values"] == pytest.approx(row["metrics"][metric]["values"])
        # Table 2 lists the methods by decreasing original I+F−D
        means = {row["method"]: row["metrics"]["score"]["mean"] for row in ranking["methods"]}
        order = ranking["ranking"]["original"]
        assert [means[m] for m in order] == sorted(means.values(), reverse=True)
        assert set(entry["layer_hf"]) == {"trained", "avg-pool swap", "random init"}
    for method in results["footprints"]["methods"].values():
        assert 0.0 <= method["hf_power_ratio"]["mean"] <= 1.0


def test_rerun_is_identical_and_reuses_the_models(study, tmp_path, monkeypatch):
    cache, _, first = study
    checkpoints = sorted(cache.glob("*/best.pt"))
    assert len(checkpoints) == len(MODELS)
    mtimes = [p.stat().st_mtime_ns for p in checkpoints]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached models should have been reused")

    monkeypatch.setattr("freqlens.training.train", no_training)
    second = json.loads(run_forgrad(tmp_path, TINY, cache_dir=cache, progress=False).read_text())
    assert first["claims"] == second["claims"]
    assert first["tables"] == second["tables"]
    for name in MODELS:
        one, two = first["models"][name], second["models"][name]
        for key in ("linearization", "layer_hf", "sigma_search"):
            assert one[key] == two[key]
        assert [r["metrics"] for r in one["ranking"]["forgrad"]] == [r["metrics"] for r in two["ranking"]["forgrad"]]
    assert second["summary"]["models reused from cache"] is True
    assert first["summary"]["models reused from cache"] is False
    assert [p.stat().st_mtime_ns for p in checkpoints] == mtimes


@pytest.mark.parametrize("overrides, match", [
    (["epochs=0"], "epochs"),
    (["n_sigmas=1"], "n_sigmas"),
    (["models=resnet_small,nonet"], "models"),
    (["methods=saliency,bogus"], "methods"),
    (["methods=saliency,gradient_input"], "prediction-based"),
    (["methods=saliency,hsic"], "not supported"),
    (["sigma_method=gradcam"], "sigma_method"),
    (["lin_fractions=0.5,1.5"], "lin_fractions"),
    (["claim_fraction=0.3"], "claim_fraction"),
    (["radii=0.1,x"], "radii"),
    (["radii=-1"], "radii"),
    (["layer_measure=energy"], "layer_measure"),
    (["occlusion_stride=9"], "occlusion_stride"),
    (["align_ratio=0"], "align_ratio"),
    (["n_images=600"], "test split"),
])
def test_bad_config_values(tmp_path, overrides, match):
    config = load_config(ForgradConfig, TINY, None, overrides)
    with pytest.raises(FreqlensError, match=match):
        run_forgrad(tmp_path, config, cache_dir=tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").glob("*/best.pt"))  # rejected before any training


@pytest.mark.parametrize("scale", ["demo", "cpu", "paper"])
def test_presets_are_valid(scale):
    from freqlens.studies.forgrad import _validate

    config = ForgradConfig.for_scale(scale)
    models, methods = _validate(config)
    assert models == list(MODELS)
    assert "saliency" in methods
    with pytest.raises(FreqlensError, match="scale"):
        ForgradConfig.for_scale("huge")


def test_grouped_bars_writes_a_png(tmp_path):
    from freqlens.report.figures import grouped_bars

    path = grouped_bars(["a", "b", "c"], {"x": [1.0, -0.5, float("nan")], "y": [0.2, 0.3, 0.4]}, tmp_path / "g.png",
                        ylabel="value", title="t")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
