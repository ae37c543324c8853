"""Training modes: the protocol, Standard, describe_mode, evaluating."""

from __future__ import annotations

import torch
from torch import nn

from freqlens.training import Standard, TrainingMode, describe_mode, evaluating


def test_standard_is_identity_and_a_training_mode():
    mode = Standard()
    x = torch.rand(5, 3, 8, 8)
    y = torch.randint(0, 10, (5,))
    before = x.clone()
    out = mode.transform(nn.Identity(), x, y, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, before)
    assert isinstance(mode, TrainingMode)
    assert mode.name == "standard"
    assert describe_mode(mode) == {"name": "standard"}


def test_object_without_transform_is_not_a_mode():
    assert not isinstance(object(), TrainingMode)


class _Custom:
    name = "custom"

    def __init__(self):
        self.carrier = lambda x: x

    def transform(self, model, x, y, generator=None):
        return x

    def describe(self):
        return {"beta": 0.5, "noise": ("gaussian", 1), "carrier": self.carrier, "scale": torch.tensor(2.0),
                "bad": float("nan")}


def test_describe_mode_gives_plain_python():
    description = describe_mode(_Custom())
    assert description["name"] == "custom"
    assert description["beta"] == 0.5
    assert description["noise"] == ["gaussian", 1]
    assert description["scale"] == 2.0
    # a callable is stored as its qualified name: no memory address, equal in a resumed process
    assert "<lambda>" in description["carrier"] and "0x" not in description["carrier"]
    assert description == describe_mode(_Custom())
    assert description["bad"] == "nan"


def test_describe_mode_without_describe_uses_the_name():
    class Bare:
        name = "bare"

        def transform(self, model, x, y, generator=None):
            return x

    assert describe_mode(Bare()) == {"name": "bare"}


def test_evaluating_restores_each_submodule_flag():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.BatchNorm1d(2))
    model.train()
    model[2].eval()  # a frozen batch norm must stay frozen
    with evaluating(model):
        assert not any(module.training for module in model.modules())
    assert model.training and model[0].training and model[1].training
    assert not model[2].training
