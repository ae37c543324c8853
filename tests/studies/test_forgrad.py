"""The FORGrad study (seed 001) at a tiny scale: schema, figures, both FORGrad pipelines, claims recomputed
from the stored raw numbers (paired bootstrap lower bounds, nonlinear radii, seeds), cached rerun, config
validation and FORGrad-specific invariants."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics

import pytest
import torch

from freqlens.analysis import bootstrap_interval, paired_bootstrap_interval
from freqlens.errors import FreqlensError
from freqlens.studies.base import load_config
from freqlens.studies.forgrad import STUDY, ForgradConfig, run_forgrad

from .contract import PNG_SIGNATURE, check_study_contract

MODELS = ("resnet_small", "vit_tiny", "convnext_tiny")
MODES = ("magnitude", "signed")
TINY = dataclasses.replace(
    ForgradConfig(), models=",".join(MODELS), dataset="demo-mnist", zoo="", epochs=1, n_train=300, n_images=4,
    n_calibration=4, steps=4, mufidelity_samples=8, n_sigmas=3, methods="saliency,gradient_input,gradcam,occlusion",
    n_dirs=4, radii="0.1,1,3", seeds="0", n_resamples=200,
)
#: one model (reused from TINY's cache), the signed pipeline only, two seeds
SIGNED = dataclasses.replace(TINY, models="resnet_small", modes="signed", seeds="0,1")
GAINS = ("insertion_minus_deletion", "score", "mufidelity")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    path = run_forgrad(tmp_path_factory.mktemp("run1"), TINY, cache_dir=cache, progress=False)
    return cache, path, json.loads(path.read_text())


@pytest.fixture(scope="module")
def signed_run(study, tmp_path_factory):
    cache = study[0]
    path = run_forgrad(tmp_path_factory.mktemp("signed"), SIGNED, cache_dir=cache, progress=False)
    return cache, path, json.loads(path.read_text())


def _claims(results, text):
    return [claim for claim in results["claims"] if text in claim["claim"]]


def _per_image_gains(results, mode, seed, metric):
    """Per image: mean over (model, gradient method) of FORGrad* − raw, from the stored rankings."""
    def values(row):
        metrics = row["metrics"]
        if metric == "insertion_minus_deletion":
            return [i - d for i, d in zip(metrics["insertion"]["values"], metrics["deletion"]["values"])]
        return metrics[metric]["values"]

    star, raw = [], []
    for entry in results["models"].values():
        ranking = entry["tables"][mode][str(seed)]["ranking"]
        starred = {row["method"]: row for row in ranking["forgrad"]}
        for row in ranking["methods"]:
            if row["family"] == "gradient":
                raw.append(values(row))
                star.append(values(starred[row["method"]]))
    return torch.tensor(star, dtype=torch.float64).mean(0), torch.tensor(raw, dtype=torch.float64).mean(0)


def test_results_schema(study):
    _, path, results = study
    check_study_contract(path, results, STUDY, TINY)
    assert set(results["models"]) == set(MODELS)
    table1 = results["tables"][0]["rows"]
    for mode in MODES:
        # Grad-CAM needs convolutions: "n.a." on the ViT (seed 001 Table 1); FORGrad* rows for the gradient
        # methods only, as in seed 001 Table 1
        (vit_gradcam,) = [row for row in table1 if row[:3] == ["vit_tiny", mode, "gradcam"]]
        assert vit_gradcam[3] == "n.a."
        labels = [row[2] for row in table1 if row[:2] == ["resnet_small", mode]]
        assert labels == ["saliency", "saliency*", "gradient_input", "gradient_input*", "gradcam", "occlusion"]
    assert results["models"]["vit_tiny"]["not applicable"] == ["gradcam"]
    # footprints + per pipeline (3 paired gains, ranking, σ*) + linearization, pooling, random
    assert len(results["claims"]) == 1 + len(MODES) * 5 + 3


def test_per_model_figures(study):
    _, _, results = study
    listed = {figure["file"] for figure in results["figures"]}
    for kind in ("layer_hf", "linearization", "linearization_ratio"):
        assert {f"{kind}_{m}.png" for m in MODELS} <= listed
    assert {f"forgrad_maps_{mode}.png" for mode in MODES} <= listed


def test_both_pipelines_are_ranked(study):
    _, _, results = study
    for entry in results["models"].values():
        assert set(entry["tables"]) == set(MODES)
        for mode in MODES:
            ranking = entry["tables"][mode]["0"]["ranking"]
            assert ranking["forgrad_mode"] == mode and ranking["sigma_source"] == "calibration"
            assert all(row["sigma_search"]["mode"] == mode for row in ranking["forgrad"])
        assert set(entry["tables"]["signed"]["0"]["raw_magnitude_ranking"]) == {"saliency", "gradient_input"}
        assert entry["tables"]["magnitude"]["0"]["raw_magnitude_ranking"] == {}
    assert {(g["mode"], g["metric"]) for g in results["gains"]} == {(m, g) for m in MODES for g in GAINS}
    for mode in MODES:
        assert len(_claims(results, f"[{mode} pipeline]")) == 5


def test_forgrad_claims_are_paired_interval_lower_bounds(study):
    """Each 'improves' claim: left = lower bound of the paired bootstrap interval on the evaluated images,
    recomputed from the stored per-image rows, > 0; its label states the interval."""
    _, _, results = study
    texts = {"insertion_minus_deletion": "Insertion − Deletion", "score": "I+F−D of", "mufidelity": "MuFidelity of"}
    for gain in results["gains"]:
        mode, metric = gain["mode"], gain["metric"]
        (stored,) = gain["seeds"]
        star, raw = _per_image_gains(results, mode, 0, metric)
        assert stored["per_image_gain"] == pytest.approx((star - raw).tolist(), abs=1e-12)
        generator = torch.Generator().manual_seed(0)
        interval = paired_bootstrap_interval(star, raw, TINY.n_resamples, TINY.confidence, generator)
        again = bootstrap_interval(stored["per_image_gain"], TINY.n_resamples, TINY.confidence,
                                   torch.Generator().manual_seed(0))
        assert again.low == pytest.approx(interval.low, abs=1e-12)
        (claim,) = [c for c in _claims(results, f"[{mode} pipeline]") if texts[metric] in c["claim"]]
        assert claim["relation"] == ">" and claim["right"] == 0.0
        assert claim["left"] == pytest.approx(interval.low, abs=1e-12)
        assert claim["holds"] is (interval.low > 0)
        assert f"95% CI [{interval.low:.4g}, {interval.high:.4g}]" in claim["measured"]


def test_magnitude_ranking_of_signed_maps_is_the_magnitude_raw_row(study):
    """The conventions table's 'raw (magnitude ranking)' of the signed run ranks the same maps as the
    magnitude pipeline's raw row (|mean_c φ| and |Σ_c φ| order pixels alike)."""
    _, _, results = study
    for entry in results["models"].values():
        magnitude = {row["method"]: row for row in entry["tables"]["magnitude"]["0"]["ranking"]["methods"]}
        for method, values in entry["tables"]["signed"]["0"]["raw_magnitude_ranking"].items():
            for metric in ("deletion", "insertion"):
                assert values[metric] == pytest.approx(magnitude[method]["metrics"][metric]["values"], abs=1e-6)
    conventions = results["tables"][4]
    assert conventions["columns"][2:] == ["raw (signed ranking)", "raw (magnitude ranking)", "FORGrad* magnitude",
                                          "FORGrad* signed"]
    assert all(isinstance(v, float) for row in conventions["rows"] for v in row[2:])


def test_linearization_claim_uses_only_the_nonlinear_radii(study):
    _, _, results = study
    logs = []
    for name in MODELS:
        lin = results["models"][name]["linearization"]
        mask = [u > TINY.nonlinear_fraction * c for u, c in zip(lin["unfiltered"], lin["change"])]
        assert lin["nonlinear_mask"] == mask
        assert lin["nonlinear_radii"] == [r for r, keep in zip(lin["radii"], mask) if keep]
        row = lin["residual"][lin["fractions"].index(TINY.claim_fraction)]
        logs += [math.log(f / u) for f, u, keep in zip(row, lin["unfiltered"], mask) if keep]
    (claim,) = _claims(results, "linearize the model")
    if logs:
        assert claim["left"] == pytest.approx(math.exp(sum(logs) / len(logs)), rel=1e-9)
        assert claim["relation"] == "<=" and claim["right"] == TINY.align_ratio
    else:
        assert "no radius where the model is nonlinear" in claim["measured"] and claim["holds"] is False


def test_linearization_claim_without_a_nonlinear_radius_cannot_hold():
    from freqlens.metrics import LinearizationCurves
    from freqlens.studies.forgrad import LinearizationPiece, Setup, _linearization_claim

    curves = LinearizationCurves(sigmas=[7.0], radii=[0.1, 1.0], residual=torch.tensor([[0.5, 0.5]]),
                                 unfiltered=torch.tensor([0.01, 0.01]), change=torch.tensor([1.0, 1.0]),
                                 shape="box", n_images=1, n_dirs=1)
    piece = LinearizationPiece("m", [0.5], curves, curves.nonlinear_radii(0.1))
    setup = Setup(TINY, ["m"], [], ["signed"], [], "saliency", 14.0, [], None, None, False)
    claim = _linearization_claim([piece], setup)
    assert not claim.holds and "no radius where the model is nonlinear" in claim.measured


def test_footprint_claim_recomputed(study):
    _, _, results = study
    footprints = results["footprints"]["methods"]
    gradient = [m["hf_power_ratio"]["mean"] for m in footprints.values() if m["family"] == "gradient"]
    others = [m["hf_power_ratio"]["mean"] for m in footprints.values() if m["family"] != "gradient"]
    (claim,) = _claims(results, "more power in high frequencies")
    assert claim["left"] == pytest.approx(sum(gradient) / len(gradient))
    assert claim["right"] == pytest.approx(sum(others) / len(others))
    for method in footprints.values():
        assert 0.0 <= method["hf_power_ratio"]["mean"] <= 1.0


def test_forgrad_invariants(study):
    """σ* is the first argmax of I − D over the grid; a * row at the Nyquist σ is the identity filter, so its
    faithfulness equals the original row's; Table 2 lists methods by decreasing I+F−D."""
    _, _, results = study
    for name in MODELS:
        entry = results["models"][name]
        for mode in MODES:
            ranking = entry["tables"][mode]["0"]["ranking"]
            rows = {row["method"]: row for row in ranking["methods"]}
            assert [star["method"] for star in ranking["forgrad"]] == ["saliency", "gradient_input"]
            for star in ranking["forgrad"]:
                row = rows[star["method"]]
                search = star["sigma_search"]
                scores = search["insertion_minus_deletion"]
                assert star["sigma"] == search["sigma_star"] == search["sigmas"][scores.index(max(scores))]
                assert search["sigmas"][-1] == 14.0
                assert search["significant"] is (search["gain_over_unfiltered"][scores.index(max(scores))]["low"] > 0)
                if star["sigma"] == 14.0:
                    for metric in ("deletion", "insertion", "mufidelity"):
                        assert star["metrics"][metric]["values"] == pytest.approx(row["metrics"][metric]["values"])
        assert set(entry["layer_hf"]) == {"trained", "avg-pool swap", "random init"}
    columns, rows = results["tables"][1]["columns"], results["tables"][1]["rows"]
    column = columns.index("resnet_small magnitude original")
    ranking = results["models"]["resnet_small"]["tables"]["magnitude"]["0"]["ranking"]
    means = {row["method"]: row["metrics"]["score"]["mean"] for row in ranking["methods"]}
    order = [row[column] for row in rows if row[column]]
    assert [means[m] for m in order] == sorted(means.values(), reverse=True)


def test_signed_only_runs_just_that_pipeline(signed_run):
    _, path, results = signed_run
    check_study_contract(path, results, STUDY, SIGNED)
    assert set(results["models"]["resnet_small"]["tables"]) == {"signed"}
    assert {g["mode"] for g in results["gains"]} == {"signed"}
    assert not _claims(results, "[magnitude pipeline]") and len(_claims(results, "[signed pipeline]")) == 5
    assert {f["file"] for f in results["figures"]} >= {"forgrad_maps_signed.png"}
    assert not (path.parent / "forgrad_maps_magnitude.png").exists()
    (row,) = [r for r in results["tables"][4]["rows"] if r[:2] == ["resnet_small", "saliency"]]
    assert row[4] == "n.a." and isinstance(row[3], float)  # FORGrad* magnitude not run; magnitude ranking is


def test_seeds_give_a_spread_and_the_claims_use_their_mean(signed_run):
    _, _, results = signed_run
    draws = results["test indices"]
    assert set(draws) == {"0", "1"} and draws["0"]["evaluated"] != draws["1"]["evaluated"]
    # one calibration set, disjoint from every seed's evaluated images; σ* searched once and reused
    assert draws["0"]["calibration"] == draws["1"]["calibration"]
    for seed in ("0", "1"):
        assert not set(draws[seed]["evaluated"]) & set(draws["0"]["calibration"])
    tables = results["models"]["resnet_small"]["tables"]["signed"]
    for seed in ("0", "1"):
        assert tables[seed]["ranking"]["sigma_source"] == ("calibration" if seed == "0" else "given")
    searches = [{row["method"]: row["sigma_search"] for row in tables[seed]["ranking"]["forgrad"]} for seed in "01"]
    assert searches[0] == searches[1]
    (gain,) = [g for g in results["gains"] if g["metric"] == "insertion_minus_deletion"]
    lows = []
    for stored in gain["seeds"]:
        star, raw = _per_image_gains(results, "signed", stored["seed"], "insertion_minus_deletion")
        interval = paired_bootstrap_interval(star, raw, SIGNED.n_resamples, SIGNED.confidence,
                                             torch.Generator().manual_seed(stored["seed"]))
        assert stored["interval"]["low"] == pytest.approx(interval.low, abs=1e-12)
        lows.append(interval.low)
    assert len(lows) == 2
    spread = gain["spread over seeds"]["low"]
    assert spread >= 0 and spread == pytest.approx(statistics.stdev(lows))
    (claim,) = [c for c in _claims(results, "Insertion − Deletion") if "[signed pipeline]" in c["claim"]]
    assert claim["left"] == pytest.approx(sum(lows) / 2, abs=1e-12)
    assert f"± {spread:.2g}" in claim["measured"] and "over 2 seed(s)" in claim["measured"]


def test_rerun_is_identical_and_reuses_the_models(study, signed_run, tmp_path, monkeypatch):
    cache, _, first_tiny = study
    _, _, first = signed_run
    checkpoints = sorted(cache.glob("*/best.pt"))
    assert len(checkpoints) == len(MODELS)
    mtimes = [p.stat().st_mtime_ns for p in checkpoints]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached models should have been reused")

    monkeypatch.setattr("freqlens.training.train", no_training)
    second = json.loads(run_forgrad(tmp_path, SIGNED, cache_dir=cache, progress=False).read_text())
    assert first["claims"] == second["claims"]
    assert first["tables"] == second["tables"]
    assert first["gains"] == second["gains"]
    one, two = first["models"]["resnet_small"], second["models"]["resnet_small"]
    for key in ("linearization", "layer_hf"):
        assert one[key] == two[key]
    for seed, table in one["tables"]["signed"].items():
        again = two["tables"]["signed"][seed]
        assert table["raw_magnitude_ranking"] == again["raw_magnitude_ranking"]
        for rows in ("methods", "forgrad"):  # everything but the wall seconds of the cost
            assert [(r["metrics"], r.get("sigma_search")) for r in table["ranking"][rows]] == \
                   [(r["metrics"], r.get("sigma_search")) for r in again["ranking"][rows]]
    assert second["summary"]["models reused (zoo or cache)"] is True
    assert first_tiny["summary"]["models reused (zoo or cache)"] is False
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
    (["nonlinear_fraction=0"], "nonlinear_fraction"),
    (["modes=magnitude,bogus"], "modes"),
    (["modes=signed,signed"], "modes"),
    (["modes="], "modes"),
    (["seeds=0,x"], "seeds"),
    (["seeds=-1"], "seeds"),
    (["seeds=1,1"], "seeds"),
    (["confidence=1"], "confidence"),
    (["n_resamples=0"], "n_resamples"),
    (["n_images=600"], "test split"),
])
def test_bad_config_values(tmp_path, overrides, match):
    config = load_config(ForgradConfig, TINY, None, overrides)
    with pytest.raises(FreqlensError, match=match):
        run_forgrad(tmp_path, config, cache_dir=tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").glob("*/best.pt"))  # rejected before any training


@pytest.mark.parametrize("scale", ["demo", "cpu", "paper"])
def test_presets_are_valid(scale):
    from freqlens.studies.forgrad import _modes, _seeds, _validate

    config = ForgradConfig.for_scale(scale)
    models, methods = _validate(config)
    assert models == (["resnet_small"] if scale == "demo" else list(MODELS))  # seed 001's trio (zoo at cpu)
    assert "saliency" in methods and _modes(config) == list(MODES)
    # demo: fast; cpu: issue 14's >= 128 held-out images, and 3 seeds x 48 evaluated ones (the 30-min budget)
    smallest = {"demo": (8, 8), "cpu": (48, 128), "paper": (1000, 1000)}[scale]
    assert (config.n_images, config.n_calibration) >= smallest and config.n_calibration >= smallest[1]
    assert bool(config.zoo) is (scale != "paper")
    assert _seeds(config) == ([0] if scale == "demo" else [0, 1, 2])
    with pytest.raises(FreqlensError, match="scale"):
        ForgradConfig.for_scale("huge")


def test_grouped_bars_writes_a_png(tmp_path):
    from freqlens.report.figures import grouped_bars

    path = grouped_bars(["a", "b", "c"], {"x": [1.0, -0.5, float("nan")], "y": [0.2, 0.3, 0.4]}, tmp_path / "g.png",
                        ylabel="value", title="t")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_line_plot_marks_points_and_a_reference_line(tmp_path):
    from freqlens.report.figures import line_plot

    path = line_plot({"a": ([0.1, 1.0, 3.0], [4.0, 1.1, 1.0])}, tmp_path / "l.png", xlabel="r", ylabel="ratio",
                     logx=True, logy=True, points={"kept": ([1.0, 3.0], [1.1, 1.0])}, hline=1.25)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


#: one model (reused from TINY's cache), the magnitude pipeline, with the centre-prior control row
CONTROL = dataclasses.replace(TINY, models="resnet_small", modes="magnitude",
                              methods="saliency,gradient_input,gradcam,occlusion,centre_prior")


@pytest.fixture(scope="module")
def control_run(study, tmp_path_factory):
    path = run_forgrad(tmp_path_factory.mktemp("control"), CONTROL, cache_dir=study[0], progress=False)
    return json.loads(path.read_text())


def _i_minus_d(row):
    metrics = row["metrics"]
    return torch.tensor([i - d for i, d in zip(metrics["insertion"]["values"], metrics["deletion"]["values"])],
                        dtype=torch.float64)


def test_centre_prior_is_a_control_row_outside_the_families(control_run):
    results = control_run
    (row,) = [r for r in results["tables"][0]["rows"] if r[2] == "centre_prior"]
    assert row[3] == "control" and row[-1] == 0.0  # no model pass
    assert "centre_prior" not in results["footprints"]["methods"]  # the HF claim compares the two families only
    ranking = results["models"]["resnet_small"]["tables"]["magnitude"]["0"]["ranking"]
    raw = {r["method"]: r for r in ranking["methods"]}
    (claim,) = _claims(results, "matches or beats the best prediction-based")
    assert claim["right"] == pytest.approx(max(raw[m]["metrics"]["score"]["mean"] for m in ("gradcam", "occlusion")))


def test_control_claim_is_the_paired_lower_bound_against_the_blob(control_run):
    results = control_run
    ranking = results["models"]["resnet_small"]["tables"]["magnitude"]["0"]["ranking"]
    starred = {r["method"]: _i_minus_d(r) for r in ranking["forgrad"]}
    best = max(starred, key=lambda m: float(starred[m].mean()))
    prior = _i_minus_d(next(r for r in ranking["methods"] if r["method"] == "centre_prior"))
    interval = paired_bootstrap_interval(starred[best], prior, CONTROL.n_resamples, CONTROL.confidence,
                                         torch.Generator().manual_seed(0))
    (claim,) = _claims(results, "centred blob")
    assert claim["left"] == pytest.approx(interval.low, abs=1e-12) and claim["holds"] is (interval.low > 0)
    assert f"resnet_small: {best}*" in claim["measured"]


def _table(results, prefix):
    (table,) = [t for t in results["tables"] if t["title"].startswith(prefix)]
    return table


def test_sigma_by_criterion_reads_one_search_and_agrees_with_table_1(study):
    """σ* under I − D read from the MuFidelity-measuring search is the σ* Table 1 used (same images, grid,
    deterministic explainer); every σ* lies on the grid."""
    _, _, results = study
    table = _table(results, "σ* of gradient_input chosen on each criterion")
    assert table["columns"][3:] == [f"σ* by {label}" for label in
                                    ("Insertion − Deletion", "Insertion + MuFidelity − Deletion", "Insertion",
                                     "−Deletion", "MuFidelity")]
    assert {(row[0], row[1]) for row in table["rows"]} == {(m, mode) for m in MODELS for mode in MODES}
    used = {(row[0], row[1]): row[3] for row in _table(results, "σ* per model")["rows"] if row[2] == "gradient_input"}
    for row in table["rows"]:
        assert row[3] == used[(row[0], row[1])]


def test_separate_rankings_per_metric_are_sorted_by_that_metric(study):
    _, _, results = study
    table = _table(results, "Separate rankings per metric")
    for column, name in enumerate(table["columns"][1:], start=1):
        model, mode, _, label = name.split(" ", 3)
        metric = {"Del ↓": "deletion", "Ins ↑": "insertion", "Fid ↑": "mufidelity"}[label]
        ranking = results["models"][model]["tables"][mode]["0"]["ranking"]
        values = {r["method"]: r["metrics"][metric]["mean"] for r in ranking["methods"] if r["family"] != "gradient"}
        values |= {f"{r['method']}*": r["metrics"][metric]["mean"] for r in ranking["forgrad"]}
        order = [row[column] for row in table["rows"] if row[column]]
        assert sorted(order) == sorted(values)
        means = [values[label_] for label_ in order]
        assert means == sorted(means, reverse=metric != "deletion")
