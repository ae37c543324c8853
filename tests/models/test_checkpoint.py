"""Checkpoints: format, save/load round trip, load_state checks, damaged files."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from freqlens.errors import CheckpointError
from freqlens.models import (
    build,
    checkpoint_dict,
    features,
    load,
    load_state,
    model_spec,
    read_checkpoint,
    save_model,
    swap_pooling,
)


def _trained_a_little(model: nn.Module, in_channels: int, size: int) -> nn.Module:
    """Change weights and BatchNorm running statistics away from their initial values."""
    torch.manual_seed(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.rand(4, in_channels, size, size)).logsumexp(dim=1).mean().backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize(
    "name,in_channels,size,kwargs",
    [
        ("lenet", 1, 28, {}),
        ("resnet_small", 3, 32, {"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}),
        ("fcnn", 3, 32, {"pooling": "avg"}),
        ("vit_tiny", 3, 33, {"image_size": 33, "depth": 1}),
        ("convnext_tiny", 1, 28, {"depths": [1, 1, 1]}),
        ("mlp", 1, 28, {"hidden": [16]}),
    ],
)
def test_round_trip_gives_identical_outputs(tmp_path, name, in_channels, size, kwargs):
    model = _trained_a_little(build(name, in_channels, 5, **kwargs), in_channels, size)
    path = save_model(model, tmp_path / "sub" / "model.pt", epoch=3, history={"loss": [1.5, 0.5]})
    loaded = load(path)
    assert not loaded.training
    assert type(loaded) is type(model)
    assert model_spec(loaded) == model_spec(model)
    x = torch.rand(3, in_channels, size, size)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(features(loaded, x), features(model, x))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_file_format_survives_weights_only_loading(tmp_path):
    model = swap_pooling(build("lenet", 1, mean=[0.13], std=[0.31]), "avg")
    path = save_model(model, tmp_path / "m.pt", epoch=7, rng_state=torch.get_rng_state())
    raw = torch.load(path, weights_only=True)
    assert raw["freqlens_checkpoint"] == 1
    assert raw["model"] == model_spec(model)
    assert raw["model"]["kwargs"]["pooling"] == "avg" and raw["model"]["kwargs"]["mean"] == [0.13]
    assert raw["epoch"] == 7 and torch.equal(raw["rng_state"], torch.get_rng_state())
    assert raw["model_state"].keys() == model.state_dict().keys()
    assert read_checkpoint(path)["epoch"] == 7


def test_checkpoint_dict_is_a_snapshot():
    model = build("lenet", 1)
    checkpoint = checkpoint_dict(model)
    before = checkpoint["model_state"]["classifier.weight"].clone()
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    assert torch.equal(checkpoint["model_state"]["classifier.weight"], before)


def test_checkpoint_dict_refuses_reserved_extra_keys():
    with pytest.raises(ValueError, match="reserved"):
        checkpoint_dict(build("lenet"), model_state={})


def test_save_is_atomic(tmp_path):
    path = save_model(build("lenet", 1), tmp_path / "m.pt", epoch=1)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_model(build("lenet", 1), path, epoch=2, bad=lambda: None)  # lambdas cannot be pickled
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_load_state_into_another_architecture_names_both(tmp_path):
    path = save_model(build("vgg11", 3, width=8), tmp_path / "x.pt")
    with pytest.raises(CheckpointError) as info:
        load_state(build("lenet", 3), path)
    message = str(info.value)
    assert "x.pt" in message and "'vgg11'" in message and "'lenet'" in message
    assert message.index("'vgg11'") < message.index("'lenet'")


def test_load_state_with_other_arguments_names_the_difference(tmp_path):
    path = save_model(build("lenet", 3, 10), tmp_path / "ten.pt")
    with pytest.raises(CheckpointError, match="num_classes"):
        load_state(build("lenet", 3, 7), path)


def test_load_state_loads_weights_and_returns_extras(tmp_path):
    source = _trained_a_little(build("resnet_small", 1, widths=[8, 8, 16]), 1, 28)
    path = save_model(source, tmp_path / "s.pt", epoch=4, optimizer_state={"lr": 0.1})
    target = build("resnet_small", 1, widths=[8, 8, 16])
    checkpoint = load_state(target, path)
    assert checkpoint["epoch"] == 4 and checkpoint["optimizer_state"] == {"lr": 0.1}
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(target.eval()(x), source(x))
    # a dict works too; an equivalent spec written differently (default image size) is accepted
    load_state(build("resnet_small", 1, image_size=28, widths=(8, 8, 16)), checkpoint_dict(source))


def test_load_state_into_a_foreign_model_checks_the_state_dict(tmp_path):
    path = save_model(build("lenet", 1), tmp_path / "l.pt")
    with pytest.raises(CheckpointError, match=r"'lenet'.*Sequential"):
        load_state(nn.Sequential(nn.Linear(2, 2)), path)


def test_state_that_does_not_fit_its_spec(tmp_path):
    checkpoint = checkpoint_dict(build("lenet", 1))
    del checkpoint["model_state"]["classifier.bias"]
    torch.save(checkpoint, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=r"broken.pt.*classifier.bias"):
        load(tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="classifier.bias"):
        load_state(build("lenet", 1), checkpoint)


def test_unbuildable_spec(tmp_path):
    checkpoint = checkpoint_dict(build("lenet", 1))
    checkpoint["model"]["name"] = "lenet9000"
    torch.save(checkpoint, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd.pt.*lenet9000"):
        load(tmp_path / "odd.pt")


@pytest.fixture
def good_bytes(tmp_path) -> bytes:
    return save_model(build("lenet", 1), tmp_path / "good.pt").read_bytes()


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothere.pt not found"):
        load(tmp_path / "nothere.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        read_checkpoint(tmp_path)


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.0])
def test_truncated_file(tmp_path, good_bytes, cut):
    path = tmp_path / "cut.pt"
    path.write_bytes(good_bytes[: int(len(good_bytes) * cut)])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load(path)


def test_corrupt_file(tmp_path, good_bytes):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(torch.randint(0, 256, (5000,), dtype=torch.uint8).tolist()))
    with pytest.raises(CheckpointError, match="noise.pt"):
        read_checkpoint(path)
    # damage the middle of a valid zip: the archive's CRC check or the unpickler notices
    damaged = bytearray(good_bytes)
    start = len(damaged) // 3
    damaged[start : start + 200] = bytes(200)
    path.write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match="noise.pt"):
        load(path)


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"freqlens_checkpoint": 1, "thing": nn.Linear(2, 2)}, path)
    with pytest.raises(CheckpointError, match="obj.pt"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    "content,fragment",
    [
        ({"state_dict": {}}, "not a freqlens checkpoint"),
        ([1, 2, 3], "not a freqlens checkpoint"),
        ({"freqlens_checkpoint": 2, "model": {}, "model_state": {}}, "newer"),
        ({"freqlens_checkpoint": 1, "model": {"name": "lenet"}, "model_state": {}}, "'model' entry"),
        ({"freqlens_checkpoint": 1, "model": {"name": "lenet", "kwargs": {}}, "model_state": [1]}, "model_state"),
    ],
)
def test_not_a_freqlens_checkpoint(tmp_path, content, fragment):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=rf"other.pt.*{fragment}"):
        read_checkpoint(path)
