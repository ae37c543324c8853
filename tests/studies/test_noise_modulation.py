"""The noise-modulation study (seed 000) at a tiny demo scale: schema, figures, claims recomputed from the
raw numbers, VII and accuracy recomputed from the cached checkpoints, model sharing and cache reuse."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from freqlens.data import load_dataset, pick_indices
from freqlens.errors import FreqlensError
from freqlens.metrics import vii
from freqlens.models import load
from freqlens.studies.noise_modulation import (
    MAIN,
    STUDY,
    NoiseModulationConfig,
    loss_gradients,
    parse_betas,
    run_noise_modulation,
)
from freqlens.training import evaluate

from .contract import check_study_contract

# trained for the test (zoo=""), on 400 digits of the MNIST sample
TINY = dataclasses.replace(NoiseModulationConfig(), dataset="demo-mnist", zoo="", epochs=1, n_train=400,
                           betas="0.5,1.0", noises="gaussian,uniform", at_eps=0.1, at_alpha=0.04, at_steps=2,
                           n_images=4, n_vii=64, cost_steps=2)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    path = run_noise_modulation(tmp_path_factory.mktemp("run1"), TINY, cache_dir=cache, progress=False)
    return cache, path, json.loads(path.read_text())


def test_results_schema(study):
    _, path, results = study
    check_study_contract(path, results, STUDY, TINY)
    assert "models" in results
    assert results["betas"] == [0.5, 1.0] and results["noises"] == ["gaussian", "uniform"]
    assert set(results["models"]) == {*MAIN, "β=0.5", "β=1", "gaussian", "uniform"}
    assert [row[0] for row in results["tables"][0]["rows"]] == list(MAIN)
    assert len(results["claims"]) == 6


def test_claims_hold_iff_their_numbers_compare(study):
    _, _, results = study
    models = results["models"]
    claims = results["claims"]
    # left / right (holds = their comparison: check_study_contract) are the measured numbers stored with the models
    assert (claims[0]["left"], claims[0]["right"]) == (models["noise modulation"]["vii"], models["standard"]["vii"])
    assert (claims[1]["left"], claims[1]["right"]) == (models["adversarial"]["vii"], models["standard"]["vii"])
    assert (claims[2]["left"], claims[2]["right"]) == (models["noise modulation"]["seconds_per_step"],
                                                       models["adversarial"]["seconds_per_step"])
    assert (claims[3]["left"], claims[3]["right"]) == (models["β=0.5"]["vii"], models["β=1"]["vii"])
    assert (claims[4]["left"], claims[4]["right"]) == (models["β=1"]["accuracy"], models["β=0.5"]["accuracy"])
    assert claims[5]["left"] == min(models[noise]["vii"] for noise in results["noises"])
    # the tables agree with the measures
    for label, source, accuracy, value, seconds in results["tables"][0]["rows"]:
        assert source == models[label]["model"]["source"]
        assert (accuracy, value, seconds) == pytest.approx(
            (models[label]["accuracy"], models[label]["vii"], models[label]["seconds_per_step"]), abs=1e-3)


def test_equal_modes_share_one_model(study):
    cache, _, results = study
    models = results["models"]
    checkpoint = {label: m["model"]["source"] for label, m in models.items()}
    assert checkpoint["β=0.5"] == checkpoint["gaussian"] == checkpoint["noise modulation"]
    assert checkpoint["β=1"] == checkpoint["standard"]
    distinct = set(checkpoint.values())
    assert len(distinct) == 4  # standard, noise modulation, adversarial, uniform carrier
    assert {str(p) for p in cache.glob("*/best.pt")} == distinct


def test_measures_recomputed_from_checkpoints(study):
    _, _, results = study
    train_set = load_dataset(TINY.dataset, "train")  # the n_train images trained_model draws
    train_set = train_set.subset(pick_indices(len(train_set), TINY.n_train, TINY.seed))
    test_set = load_dataset(TINY.dataset, "test")
    mean_image = (train_set.images.double().mean(dim=0) / 255).float()
    order = pick_indices(len(test_set), TINY.n_vii, TINY.seed)
    images, labels = test_set.float_images(order), test_set.labels[order]
    for label in ("standard", "noise modulation", "adversarial"):
        measured = results["models"][label]
        model = load(measured["model"]["source"])
        assert vii(model, images, labels, mean_image) == pytest.approx(measured["vii"], abs=1e-9)
        assert evaluate(model, test_set)["accuracy"] == pytest.approx(measured["accuracy"], abs=1e-9)
        history = json.loads((Path(measured["model"]["source"]).parent / "history.json").read_text())
        assert measured["model"]["seconds_per_epoch"] == pytest.approx(sum(e["seconds"] for e in history) / len(history))
        assert measured["seconds_per_step"] > 0
        assert measured["mode"]["name"] == {"standard": "standard", "noise modulation": "noise-modulation",
                                            "adversarial": "adversarial"}[label]


def test_rerun_is_identical_and_reuses_the_models(study, tmp_path, monkeypatch):
    cache, _, first = study
    mtimes = {p: p.stat().st_mtime_ns for p in cache.glob("*/best.pt")}

    def no_training(*args, **kwargs):
        raise AssertionError("the cached models should have been reused")

    monkeypatch.setattr("freqlens.training.train", no_training)
    second = json.loads(run_noise_modulation(tmp_path, TINY, cache_dir=cache, progress=False).read_text())
    timing = {2}  # the cost claim and the cost columns are timed anew
    assert [c for i, c in enumerate(second["claims"]) if i not in timing] == \
           [c for i, c in enumerate(first["claims"]) if i not in timing]
    assert second["tables"][1:3] == first["tables"][1:3]
    for label, measured in first["models"].items():
        again = second["models"][label]
        assert {k: again[k] for k in ("accuracy", "vii", "mode")} == {k: measured[k] for k in ("accuracy", "vii", "mode")}
        assert again["model"]["source"] == measured["model"]["source"]
        assert again["reused"] is True
    assert first["summary"]["models trained"] == 4 and second["summary"]["models trained"] == 0
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*/best.pt")} == mtimes


@pytest.mark.parametrize("changes, match", [
    ({"epochs": 0}, "epochs"),
    ({"n_vii": -1}, "n_vii"),
    ({"at_eps": 0.0}, "at_eps"),
    ({"beta": 1.0}, "beta"),
    ({"noise": "pink"}, "noise"),
    ({"betas": "0.5"}, "betas"),
    ({"betas": "0.2,1.5"}, "betas"),
    ({"betas": "0.2,x"}, "betas"),
    ({"noises": "gaussian,pink"}, "noises"),
    ({"noises": ""}, "noises"),
])
def test_bad_config_raises(tmp_path, changes, match):
    with pytest.raises(FreqlensError, match=match):
        run_noise_modulation(tmp_path, dataclasses.replace(TINY, **changes), progress=False)
    assert not list(tmp_path.rglob("results.json"))


def test_scales_and_parsing():
    assert parse_betas(" 0.8, 0.2,0.8 ,1") == [0.2, 0.8, 1.0]
    cpu = NoiseModulationConfig.for_scale("cpu")
    assert cpu.dataset == "cifar10" and cpu.n_train == 0 and cpu.zoo == "cifar10"
    demo = NoiseModulationConfig.for_scale("demo")
    # the zoo's lenets, analysed on the shipped CIFAR-10 sample
    assert (demo.model, demo.dataset, demo.zoo, demo.epochs, demo.seed, demo.batch_size, demo.lr, demo.n_train) == \
           ("lenet", "demo-cifar10", "cifar10", 10, 0, 64, 1e-3, 0)
    with pytest.raises(FreqlensError, match="scale"):
        NoiseModulationConfig.for_scale("huge")


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5))


@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_loss_gradients_are_per_image(batch_size):
    model = _tiny_model().train()
    images = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 3, 4])
    gradients = loss_gradients(model, images, labels, batch_size)
    assert model.training  # mode restored
    model.eval()
    for index in range(5):  # independent: one image at a time, autograd on its own mean loss
        x = images[index: index + 1].clone().requires_grad_(True)
        F.cross_entropy(model(x), labels[index: index + 1]).backward()
        torch.testing.assert_close(gradients[index], x.grad[0], rtol=1e-5, atol=1e-7)
