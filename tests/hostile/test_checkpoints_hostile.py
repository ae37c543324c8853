"""Hostile checkpoints (issue 12): absurd constructor arguments are refused with
:class:`~freqlens.errors.CheckpointError` before anything is allocated, and weights holding NaN/inf are
refused naming the first bad tensor."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch

import freqlens.models.checkpoint as checkpoint_module
from freqlens.errors import CheckpointError, ModelError
from freqlens.models import build, checkpoint_dict, load, load_state
from freqlens.models.registry import (
    MAX_IMAGE_SIZE,
    MAX_IN_CHANNELS,
    MAX_NUM_CLASSES,
    MAX_PARAMETERS,
    MAX_WIDTH,
    state_shapes,
)

from .bounded import outcome

#: (model name, hostile kwargs, fragment of the message)
ABSURD = [
    ("lenet", {"num_classes": 10**12}, f"num_classes=1000000000000 exceeds the limit of {MAX_NUM_CLASSES}"),
    ("mlp", {"image_size": 10**6}, f"exceeds the limit of {MAX_IMAGE_SIZE} per side"),
    ("lenet", {"in_channels": 10**6}, f"in_channels=1000000 exceeds the limit of {MAX_IN_CHANNELS}"),
    ("resnet_small", {"widths": [10**9], "blocks": [1]}, f"exceeds the limit of {MAX_WIDTH} per size"),
    ("fcnn", {"width": 10**9}, "width=1000000000 exceeds"),
    ("vit_tiny", {"depth": 10**9}, "depth asks for 1000000000 layers"),
    ("vit_tiny", {"mlp_ratio": 1e300}, "cannot be built with these arguments"),
    ("mlp", {"hidden": [65536, 65536]}, f"more than the {MAX_PARAMETERS:,} allowed"),
    ("resnet_small", {"widths": [2048] * 4, "blocks": [2] * 4}, "parameter elements, more than"),
    ("mlp", {"hidden": [[4]]}, "hidden must be flat, got a nested list"),
    ("resnet_small", {"widths": [8] * 100, "blocks": [1] * 100}, "widths has 100 items"),
    ("lenet", {"num_classes": -3}, "num_classes must be a positive int, got -3"),
    ("lenet", {"num_classes": True}, "num_classes must be a positive int, got True"),
    ("mlp", {"image_size": [28, -28]}, "image_size must hold positive ints"),
    ("fcnn", {"width": True}, "width must be a number, got True"),
    ("vit_tiny", {"mlp_ratio": True}, "mlp_ratio must be a number, got True"),
]


def tiny_checkpoint(name: str = "lenet", **overrides: Any) -> dict[str, Any]:
    """The checkpoint of a small ``name`` model, its recorded arguments then overridden."""
    kwargs = {"mlp": {"image_size": 4, "hidden": [4]}, "resnet_small": {"widths": [4], "blocks": [1]},
              "fcnn": {"width": 2}, "vit_tiny": {"dim": 8, "depth": 1, "heads": 2}}.get(name, {})
    checkpoint = checkpoint_dict(build(name, 1, **kwargs))
    checkpoint["model"]["kwargs"].update(overrides)
    return checkpoint


@pytest.mark.parametrize("name, kwargs, fragment", ABSURD, ids=[f"{n}-{next(iter(k))}" for n, k, _ in ABSURD])
def test_absurd_arguments_are_refused_before_allocation(tmp_path, name, kwargs, fragment):
    path = tmp_path / "hostile.pt"
    torch.save(tiny_checkpoint(name, **kwargs), path)
    result = outcome(lambda: load(path))
    assert isinstance(result, CheckpointError), result
    assert f"checkpoint {path} holds a model that cannot be built" in str(result)
    assert fragment in str(result)


@pytest.mark.parametrize("name, kwargs, fragment", ABSURD[:9], ids=[f"{n}-{next(iter(k))}" for n, k, _ in ABSURD[:9]])
def test_build_and_state_shapes_refuse_the_same_arguments(name, kwargs, fragment):
    for make in (build, state_shapes):
        with pytest.raises(ModelError, match=re.escape(fragment)):
            make(name, **kwargs)


def test_a_checkpoint_does_not_make_load_build_more_than_it_holds(tmp_path, monkeypatch):
    """Arguments within the bounds that ask for a larger model than the weights in the file (here 150 M
    parameters from a 300 KB file) are refused from the shapes, before the model is built."""
    checkpoint = tiny_checkpoint("resnet_small", widths=[1024] * 4, blocks=[2] * 4)
    torch.save(checkpoint, tmp_path / "small.pt")
    assert (tmp_path / "small.pt").stat().st_size < 2**20

    def no_build(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("load built the model before checking its weights")

    monkeypatch.setattr(checkpoint_module, "build", no_build)
    with pytest.raises(CheckpointError, match=r"small.pt holds a 'resnet_small' .* do not fit it: 'stem.0.weight' "
                                              r"is \(4, 1, 3, 3\) instead of \(1024, 1, 3, 3\);.*\(and \d+ more\)"):
        load(tmp_path / "small.pt")


def test_arguments_too_long_or_too_deep_to_print():
    """torch's weights-only loader refuses huge integers in a file, but a checkpoint dict can hold them, and
    a file can hold deeply nested containers: both are refused and named without crashing the message."""
    checkpoint = tiny_checkpoint(num_classes=10**5000)
    with pytest.raises(CheckpointError, match="num_classes holds an integer of 16610 bits"):
        load(checkpoint)
    with pytest.raises(CheckpointError, match=r"holds a 'lenet' \(.*num_classes=<integer of 16610 bits>.*\) but"):
        load_state(build("lenet", 1), checkpoint)
    with pytest.raises(ModelError, match="num_classes holds an integer of 16610 bits"):
        build("lenet", num_classes=-(10**5000))
    nested: Any = 1
    for _ in range(10**5):
        nested = {"a": nested}
    checkpoint = tiny_checkpoint(hidden=nested)
    with pytest.raises(CheckpointError, match="cannot be built: lenet: hidden must be flat, got a nested dict"):
        load(checkpoint)
    with pytest.raises(CheckpointError, match=r"hidden=\{'a': \{'a': \{'a': \{\.\.\.\}\}\}\}\) but"):
        load_state(build("lenet", 1), checkpoint)
    with pytest.raises(ModelError, match="hidden must be flat, got a nested dict"):
        build("mlp", hidden=nested)


@pytest.mark.parametrize("kwargs", [{"name": "vgg11"}, {1: 2}], ids=["name", "int-key"])
def test_kwargs_that_cannot_be_passed_as_arguments(tmp_path, kwargs):
    checkpoint = tiny_checkpoint()
    checkpoint["model"]["kwargs"].update(kwargs)
    torch.save(checkpoint, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="odd.pt is damaged: its 'model' entry is not"):
        load(tmp_path / "odd.pt")


# ---------------------------------------------------------------------------------------------------------
# non-finite weights
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad, dtype):
    checkpoint = tiny_checkpoint("resnet_small")
    state = checkpoint["model_state"]
    for key in state:
        if state[key].is_floating_point():
            state[key] = state[key].to(dtype)
    state["stages.0.0.conv1.weight"][0, 0, 1, 1] = bad
    state["classifier.weight"][0, 0] = bad  # a later tensor: the message names the first
    path = tmp_path / "diverged.pt"
    torch.save(checkpoint, path)
    message = f"checkpoint {path}: weight 'stages.0.0.conv1.weight' holds NaN/inf values"
    with pytest.raises(CheckpointError, match=message):
        load(path)
    target = build("resnet_small", 1, widths=[4], blocks=[1])
    before = {key: value.clone() for key, value in target.state_dict().items()}
    with pytest.raises(CheckpointError, match=message):
        load_state(target, path)
    with pytest.raises(CheckpointError, match="the checkpoint: weight 'stages.0.0.conv1.weight' holds NaN/inf"):
        load_state(target, checkpoint)
    assert all(torch.equal(before[key], value) for key, value in target.state_dict().items())  # untouched


def test_finite_weights_and_integer_buffers_still_load(tmp_path):
    checkpoint = tiny_checkpoint("resnet_small")
    checkpoint["model_state"]["stem.1.num_batches_tracked"] = torch.tensor(7)
    torch.save(checkpoint, tmp_path / "fine.pt")
    model = load(tmp_path / "fine.pt")
    assert int(model.state_dict()["stem.1.num_batches_tracked"]) == 7
