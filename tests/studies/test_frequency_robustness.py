"""The frequency-robustness study (seeds 002, 003) at a tiny demo scale."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from freqlens.errors import FreqlensError
from freqlens.studies.frequency_robustness import (
    ATTACKS,
    SEED_ATTACKS,
    STUDY,
    FrequencyRobustnessConfig,
    band_profile,
    run_frequency_robustness,
)

from .contract import check_study_contract

# trained for the test (zoo=""), on 300 digits of the MNIST sample
TINY = dataclasses.replace(
    FrequencyRobustnessConfig(), dataset="demo-mnist", zoo="", n_train=300, epochs=1, at_epochs=1, at_eps=0.1,
    at_alpha=0.05, at_steps=1, n_images=8, attack_eps=0.1, pgd_steps=2, cw_steps=5, simba_queries=20, n_robust=4,
    robust_steps=5, nonrobust_steps=3,
)
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    first = run_frequency_robustness(tmp_path_factory.mktemp("run1"), TINY, cache_dir=cache, progress=False)
    return cache, first, json.loads(first.read_text())


def test_results_schema(study):
    _, path, results = study
    check_study_contract(path, results, STUDY, TINY)
    assert 4 <= len(results["claims"]) <= 6
    assert all(claim["seed"] in ("002", "003") for claim in results["claims"])
    assert [row[0] for row in results["tables"][0]["rows"]] == list(ATTACKS)


def _claim(results: dict, left_label: str) -> dict:
    (claim,) = [c for c in results["claims"] if c["expected"].startswith(left_label + " ")]
    return claim


def test_claims_come_from_the_raw_measures(study):
    *_, results = study
    attacks = results["attacks"]
    natural, robust = attacks["natural"], attacks["adversarially trained"]
    # 1: RCT high/low ratio recomputed (numpy) from the stored RCT maps
    high_band = results["high_band"]
    ratios = {}
    for name in SEED_ATTACKS:
        rct = np.array(results["rct"]["natural"][name])
        bands = np.add.outer(np.arange(rct.shape[0]), np.arange(rct.shape[1]))
        low = rct[bands < high_band].mean()
        if low > 0:
            ratios[name] = rct[bands >= high_band].mean() / low
            assert ratios[name] == pytest.approx(natural[name]["high_low_ratio"], rel=1e-9)
        else:  # an attack that changed nothing has no spectrum
            assert natural[name]["high_low_ratio"] is None
    if ratios:
        assert _claim(results, "smallest RCT high/low ratio")["left"] == pytest.approx(min(ratios.values()), rel=1e-9)
    # 2, 3: robust accuracies
    claim = _claim(results, "PGD robust accuracy, AT model")
    assert (claim["left"], claim["right"]) == (robust["PGD"]["robust_accuracy"], natural["PGD"]["robust_accuracy"])
    claim = _claim(results, "AT gain in robust accuracy, LF-PGD")
    assert claim["left"] == pytest.approx(robust["LF-PGD"]["robust_accuracy"] - natural["LF-PGD"]["robust_accuracy"])
    assert claim["right"] == pytest.approx(robust["PGD"]["robust_accuracy"] - natural["PGD"]["robust_accuracy"])
    # 4: low-band share of the per-band |Δ DCT| profile
    cutoff = results["summary"]["low-band cutoff"]
    profiles = results["robust_dataset"]["band_profiles"]
    claim = _claim(results, "low-band share, robust")
    for key, side in (("robust", "left"), ("non-robust", "right")):
        profile = np.array(profiles[key])
        assert claim[side] == pytest.approx(profile[:cutoff].sum() / profile.sum(), rel=1e-9)
    # 5: mean pixel change of the ablations
    change = results["occluded_frequency"]["pixel_change"]
    claim = _claim(results, "L2 change, top-k bands removed")
    assert claim["left"] == pytest.approx(np.mean(change["top"]))
    assert claim["right"] == pytest.approx(np.mean(change["lowest"]))
    # 6: mean over classes of the low-band share of the positive part of each class profile
    classes = results["attribution_shift"]["classes"]
    claim = _claim(results, "low-band share, AT model")
    for key, side in (("robust_profile", "left"), ("natural_profile", "right")):
        shares = []
        for values in classes.values():
            positive = np.clip(np.array(values[key]), 0, None)
            shares.append(positive[:cutoff].sum() / positive.sum() if positive.sum() > 0 else 0.0)
        assert claim[side] == pytest.approx(np.mean(shares), rel=1e-6)


def test_occluded_frequency_top_bands_are_the_largest_scores(study):
    *_, results = study
    of = results["occluded_frequency"]
    profiles = np.array(of["profiles"]["natural"])
    assert profiles.shape == (TINY.n_images, 28 + 28 - 1)
    for profile, top in zip(profiles, of["top_bands"]):
        assert len(set(top)) == TINY.ablate_k
        assert profile[top].min() >= np.delete(profile, top).max()
    # per-class means of the per-image profiles are the attribution-shift class profiles (same model, same images)
    labels = np.array(of["labels"])
    assert len(set(labels.tolist())) > 1  # a random subset of the test split, not its first (one-class) images
    for name, values in results["attribution_shift"]["classes"].items():
        assert np.allclose(profiles[labels == int(name)].mean(axis=0), values["natural_profile"], atol=1e-5)


def test_rerun_is_identical_and_reuses_both_models(study, tmp_path, monkeypatch):
    cache, _, one = study
    checkpoints = sorted(cache.glob("*/best.pt"))
    assert len(checkpoints) == 2  # natural + adversarially trained
    mtimes = [c.stat().st_mtime_ns for c in checkpoints]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached models should have been reused")

    monkeypatch.setattr("freqlens.training.train", no_training)
    two = json.loads(run_frequency_robustness(tmp_path, TINY, cache_dir=cache, progress=False).read_text())
    for key in ("attacks", "rct", "robust_dataset", "occluded_frequency", "attribution_shift", "claims", "tables"):
        assert one[key] == two[key], key
    assert one["summary"]["natural model reused (zoo or cache)"] is False
    assert two["summary"]["natural model reused (zoo or cache)"] is True
    assert two["summary"]["adversarially trained model reused (zoo or cache)"] is True
    assert [c.stat().st_mtime_ns for c in checkpoints] == mtimes


@pytest.mark.parametrize("changes, match", [
    ({"epochs": 0}, "epochs"),
    ({"at_steps": 0}, "at_steps"),
    ({"attack_eps": -0.1}, "attack_eps"),
    ({"lr": float("nan")}, "lr"),
    ({"n_train": -1}, "n_train"),
    ({"n_robust": 1}, "n_robust"),
    ({"n_robust": 9}, "n_robust"),
    ({"example": 8}, "example"),
    ({"low_cutoff": 55}, "low_cutoff"),
    ({"n_images": 10**6}, "n_images"),
])
def test_bad_config_is_a_clear_error(tmp_path, changes, match):
    with pytest.raises(FreqlensError, match=match):
        run_frequency_robustness(tmp_path, dataclasses.replace(TINY, **changes), progress=False)
    assert not list(tmp_path.rglob("results.json"))
    assert not list(tmp_path.rglob("*.pt"))


def test_scales():
    demo, cpu = FrequencyRobustnessConfig.for_scale("demo"), FrequencyRobustnessConfig.for_scale("cpu")
    assert demo == FrequencyRobustnessConfig()
    # the zoo's CIFAR-10 lenet and its PGD-AT twin, on the shipped sample
    assert (demo.model, demo.dataset, demo.zoo, demo.epochs, demo.at_steps, demo.at_eps) == (
        "lenet", "demo-cifar10", "cifar10", 10, 7, 8 / 255)
    assert cpu.dataset == "cifar10" and cpu.zoo == "cifar10" and cpu.n_images > demo.n_images
    assert FrequencyRobustnessConfig.for_scale("paper").n_images >= cpu.n_images
    with pytest.raises(FreqlensError, match="scale"):
        FrequencyRobustnessConfig.for_scale("huge")


@pytest.mark.parametrize("shape", [(5, 7), (8, 8), (1, 4)])
def test_band_profile_matches_a_loop(shape):
    values = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h, w = shape
    expected = [np.mean([values[i, j].item() for i in range(h) for j in range(w) if i + j == b])
                for b in range(h + w - 1)]
    assert np.allclose(band_profile(values).numpy(), expected)


def test_numbers_do_not_depend_on_the_eval_batch_size(study, tmp_path):
    cache, _, one = study
    small = dataclasses.replace(TINY, eval_batch_size=3)
    two = json.loads(run_frequency_robustness(tmp_path, small, cache_dir=cache, progress=False).read_text())
    for key in ("occluded_frequency", "attribution_shift"):
        assert _close(one[key], two[key]), key
    assert _close(one["robust_dataset"]["band_profiles"], two["robust_dataset"]["band_profiles"])


def _close(a, b) -> bool:
    """Nested dicts / lists of numbers equal up to float32 round-off."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-5 + 1e-4 * abs(b)
    return a == b
