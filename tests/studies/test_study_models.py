"""Where a study's models come from: the zoo (mode checked against the config) or trained for it."""

from __future__ import annotations

import pytest
import torch

from freqlens.errors import FreqlensError
from freqlens.models import build
from freqlens.models import zoo as zoo_module
from freqlens.studies.base import mode_tag, seconds_per_step, study_model, training_mean_image
from freqlens.training import Adversarial, NoiseModulation, Standard


def _add(root, name: str, mode_config: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build("lenet", in_channels=1, num_classes=10).eval()
    _, sha256, size = zoo_module.save_weights(name, model.state_dict(), root)
    spec = model.freqlens_spec
    zoo_module.write_entry({
        "name": name, "architecture": spec["name"], "kwargs": spec["kwargs"], "dataset": "mnist",
        "mode": mode_config["name"], "mode_config": mode_config, "command": "freqlens train ...", "seed": 0,
        "epochs": 4, "best_epoch": 4, "minutes": 2.0, "test_accuracy": 0.75, "test_images": 10000,
        "robust_accuracy": None, "robust_eval": None, "sample": "demo-mnist", "sample_accuracy": 0.7,
        "sample_images": 500, "sha256": sha256, "size": size, "notes": ""}, root)
    return model


@pytest.fixture()
def zoo(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo_module.ZOO_DIR_ENV, str(tmp_path))
    standard = _add(tmp_path, "lenet-mnist-standard", {"name": "standard"})
    _add(tmp_path, "lenet-mnist-nm0.5-gaussian", {"name": "noise-modulation", "beta": 0.5, "noise": "gaussian"}, 1)
    _add(tmp_path, "lenet-mnist-pgd-at", {"name": "adversarial", "attack": "PGDTraining", "eps": 0.3,
                                          "alpha": 0.01, "steps": 40, "norm": "inf"}, 2)
    return standard


def test_mode_tags_follow_the_zoo_names() -> None:
    assert mode_tag(None) == mode_tag(Standard()) == "standard"
    assert mode_tag(NoiseModulation(0.2, "laplace")) == "nm0.2-laplace"
    assert mode_tag(Adversarial.pgd(8 / 255, 2 / 255, 7)) == "pgd-at"
    assert mode_tag(Adversarial.fast(8 / 255, 10 / 255)) == "fgsm-at"


def test_zoo_models_are_used_with_their_recorded_numbers(zoo, tmp_path) -> None:
    found = study_model("lenet", "demo-mnist", 1, 0, tmp_path / "cache", zoo="mnist")
    assert found.source == "zoo:lenet-mnist-standard" and found.reused
    assert (found.accuracy, found.epochs, found.seconds_per_epoch) == (0.75, 4, 30.0)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(found.model(x), zoo(x), atol=2e-3, rtol=1e-2)  # float16 weights
    assert not (tmp_path / "cache").exists()  # nothing trained
    other = study_model("lenet", "demo-mnist", 1, 0, tmp_path, zoo="mnist", mode=Adversarial.pgd(0.3, 0.01, 40))
    assert other.source == "zoo:lenet-mnist-pgd-at"


def test_a_zoo_model_trained_otherwise_than_the_config_is_refused(zoo, tmp_path) -> None:
    with pytest.raises(FreqlensError, match=r"eps: zoo 0.3, config 0.1.*retrain=true"):
        study_model("lenet", "demo-mnist", 1, 0, tmp_path, zoo="mnist", mode=Adversarial.pgd(0.1, 0.01, 40))
    with pytest.raises(FreqlensError, match="the zoo has no model 'lenet-mnist-nm0.2-gaussian'"):
        study_model("lenet", "demo-mnist", 1, 0, tmp_path, zoo="mnist", mode=NoiseModulation(0.2, "gaussian"))


def test_retrain_trains_for_the_study(zoo, tmp_path) -> None:
    found = study_model("lenet", "demo-mnist", 1, 0, tmp_path, zoo="mnist", retrain=True, n_train=64,
                        progress=False)
    assert found.source.endswith("best.pt") and not found.reused and found.epochs == 1
    again = study_model("lenet", "demo-mnist", 1, 0, tmp_path, zoo="", n_train=64, progress=False)
    assert again.source == found.source and again.reused


def test_training_mean_of_the_cifar_sample_is_the_stored_one() -> None:
    from freqlens.data.samples import demo_cifar10_arrays

    mean = training_mean_image("demo-cifar10")
    assert mean.shape == (3, 32, 32) and mean.dtype == torch.float32
    assert torch.equal(mean, torch.from_numpy(demo_cifar10_arrays()["train_mean_image"]))
    assert 0.4 < float(mean.mean()) < 0.5  # CIFAR-10's mean pixel is about 0.47


def test_training_mean_of_a_dataset_is_its_train_split_mean() -> None:
    from freqlens.data import load_dataset

    images = load_dataset("demo-mnist", "train").images
    torch.testing.assert_close(training_mean_image("demo-mnist"), images.double().mean(0).div(255).float())


def test_seconds_per_step_leaves_the_model_alone(zoo) -> None:
    before = {k: v.clone() for k, v in zoo.state_dict().items()}
    seconds = seconds_per_step(zoo, NoiseModulation(0.5, "gaussian"), torch.rand(8, 1, 28, 28),
                               torch.arange(8) % 10, steps=2)
    assert seconds > 0 and not zoo.training
    assert all(torch.equal(before[k], v) for k, v in zoo.state_dict().items())
