"""The user's own model: factory + state dict, TorchScript, torch.export, register, SelectOutput, Normalized."""

from __future__ import annotations

import hashlib
import sys
import textwrap

import pytest
import torch
from torch import nn

from freqlens.attribution import GradCAM, Saliency
from freqlens.attribution.gradcam import find_layer
from freqlens.attribution.registry import make_explainer
from freqlens.errors import CheckpointError, InputError, ModelError
from freqlens.models import (
    NORMALIZATIONS,
    Normalized,
    SelectOutput,
    build,
    load,
    load_model_file,
    load_user_model,
    register,
    save_model,
    unregister,
)
from freqlens.models.user import file_kind, parse_model_args, parse_normalize

MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width=4, mode="tensor"):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(width * 16, 10)

    def forward(self, x):
        h = self.pool(torch.relu(self.conv(x))).flatten(1)
        logits = self.fc(h)
        if self.mode == "tuple":
            return logits, h
        if self.mode == "dict":
            return {"features": h, "logits": logits}
        return logits


def make(width=4, mode="tensor", seed=0):
    torch.manual_seed(seed)
    return Net(width, mode)


def make_dict():
    return {"not": "a module"}


def broken():
    raise RuntimeError("no GPU here")


NOT_CALLABLE = 3
'''


@pytest.fixture
def mymodels(tmp_path, monkeypatch):
    """A throwaway module ``mymodels`` on sys.path (imported fresh for each test)."""
    (tmp_path / "mymodels.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mymodels", raising=False)
    import mymodels as module

    yield module
    sys.modules.pop("mymodels", None)


def _images(count: int = 3) -> torch.Tensor:
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_factory_with_flat_and_nested_state_dicts(mymodels, tmp_path):
    trained = mymodels.make(width=5, seed=7)  # other weights than the factory's own (seed 0)
    flat, nested = tmp_path / "flat.pt", tmp_path / "nested.pt"
    torch.save(trained.state_dict(), flat)
    torch.save({"model_state_dict": trained.state_dict(), "epoch": 3}, nested)
    x = _images()
    for path in (flat, nested):
        model, record = load_user_model("mymodels:make", weights=path, model_args=["width=5"])
        assert not model.training
        torch.testing.assert_close(model(x), trained(x), rtol=0, atol=0)
        assert record["kind"] == "factory" and record["spec"] == "mymodels:make"
        assert record["model_args"] == {"width": 5}
        assert record["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    untrained, record = load_user_model("mymodels:make", model_args={"width": 5})
    assert record["weights"] is None
    assert not torch.equal(untrained(x), trained(x))


def test_weights_that_do_not_fit_name_the_keys(mymodels, tmp_path):
    path = tmp_path / "other.pt"
    state = mymodels.make(width=4).state_dict()
    state["extra.bias"] = torch.zeros(2)
    del state["fc.bias"]
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_user_model("mymodels:make", weights=path)
    message = str(info.value)
    assert f"weights {path} do not fit the model" in message
    assert "missing keys fc.bias" in message and "unexpected keys extra.bias" in message
    assert "\n" not in message
    torch.save(mymodels.make(width=6).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"wrong shapes 'conv.weight' is \(6, 1, 3, 3\) instead of \(4, 1, 3, 3\)"):
        load_user_model("mymodels:make", weights=path)


@pytest.mark.parametrize("spec,message", [
    ("nosuchmodule_xyz:make", "cannot import module 'nosuchmodule_xyz' (No module named 'nosuchmodule_xyz')"),
    ("mymodels:missing", "module 'mymodels' has no attribute 'missing'"),
    ("mymodels:make_dict", "mymodels:make_dict returned a dict, not an nn.Module"),
    ("mymodels:NOT_CALLABLE", "mymodels:NOT_CALLABLE is a int, not a callable"),
    ("mymodels:broken", "mymodels:broken failed with arguments {} (RuntimeError: no GPU here)"),
    ("mymodels.make", "is not PKG.MODULE:FACTORY"),
])
def test_bad_specs_give_one_line_errors(mymodels, spec, message):
    with pytest.raises(ModelError) as info:
        load_user_model(spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_torchscript_and_export_files(mymodels, tmp_path):
    net = mymodels.make().eval()
    x = _images(2)
    scripted = tmp_path / "net.ts"
    torch.jit.save(torch.jit.trace(net, x), scripted)
    assert file_kind(scripted) == "torchscript"
    model, record = load_model_file(scripted)
    assert record["kind"] == "torchscript"
    torch.testing.assert_close(model(_images(5)), net(_images(5)))
    try:
        program = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception as error:  # noqa: BLE001 - any failure of torch.export (depends on the torch build)
        pytest.skip(f"torch.export cannot export the test model on this torch: {error}")
    exported = tmp_path / "net.pt2"
    torch.export.save(program, exported)
    model, record = load_model_file(exported)
    assert record["kind"] == "export"
    model.train()
    model.eval()  # the exported module itself refuses .eval(); the wrapper accepts it
    torch.testing.assert_close(model(_images(5)), net(_images(5)))
    maps = Saliency(model)(_images(4))  # gradients flow through the exported graph
    torch.testing.assert_close(maps, Saliency(net)(_images(4)))


def test_a_state_dict_given_as_checkpoint_points_to_model_and_weights(mymodels, tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(mymodels.make().state_dict(), path)
    assert file_kind(path) == "freqlens-checkpoint"
    with pytest.raises(CheckpointError, match="for a plain state dict give --model PKG.MODULE:FACTORY --weights"):
        load_model_file(path)


def test_select_output_by_index_key_and_callable(mymodels):
    plain = mymodels.make().eval()
    as_tuple, as_dict = mymodels.make(mode="tuple").eval(), mymodels.make(mode="dict").eval()
    x = _images()
    expected = plain(x)
    torch.testing.assert_close(SelectOutput(as_tuple, 0)(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(SelectOutput(as_dict, "logits")(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(SelectOutput(as_dict, lambda out: out["logits"])(x), expected, rtol=0, atol=0)
    with pytest.raises(ModelError, match=r"the model returned a tuple of 2; output 3 is out of range"):
        SelectOutput(as_tuple, 3)(x)
    with pytest.raises(ModelError, match=r"the model returned a dict without key 'score' \(keys: 'features', 'logits'\)"):
        SelectOutput(as_dict, "score")(x)
    with pytest.raises(ModelError, match="not a tuple or list"):
        SelectOutput(plain, 0)(x)
    with pytest.raises(ModelError, match="output must be an index"):
        SelectOutput(plain, 1.5)


def test_tuple_model_without_selector_says_how_to_select(mymodels):
    with pytest.raises(InputError, match=r"returned a tuple of 2, not a logits tensor; .*SelectOutput"):
        Saliency(mymodels.make(mode="tuple"))(_images())


def test_gradcam_finds_the_conv_through_the_wrapper(mymodels):
    plain, as_dict = mymodels.make().eval(), mymodels.make(mode="dict").eval()
    wrapped = SelectOutput(as_dict, "logits")
    assert find_layer(wrapped, None) is as_dict.conv
    x = _images()
    torch.testing.assert_close(GradCAM(wrapped)(x), GradCAM(plain)(x))
    torch.testing.assert_close(make_explainer("gradcam", as_dict, output="logits")(x), GradCAM(plain)(x))
    torch.testing.assert_close(make_explainer("saliency", mymodels.make(mode="tuple"), output=0)(x), Saliency(plain)(x))


def test_register_build_save_load_round_trip(mymodels, tmp_path):
    register("my_net", mymodels.make)
    try:
        model = build("my_net", width=6, seed=3)
        assert model.conv.out_channels == 6
        assert model.freqlens_spec == {"name": "my_net", "kwargs": {
            "width": 6, "seed": 3, "mode": "tensor", "mean": None, "std": None, "pooling": None,
            "antialias": None}}
        path = save_model(model, tmp_path / "my.pt")
        loaded = load(path)
        x = _images()
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
        normalized = build("my_net", mean=[0.5], std=[0.25])
        assert isinstance(normalized, Normalized) and normalized.std.tolist() == [0.25]
        with pytest.raises(ModelError, match="unknown argument"):
            build("my_net", depth=3)
        with pytest.raises(ModelError, match="takes no in_channels"):
            build("my_net", in_channels=1)
        with pytest.raises(ModelError, match="already registered"):
            register("my_net", mymodels.make_dict)
        with pytest.raises(ModelError, match="built-in model"):
            register("lenet", mymodels.make)
    finally:
        unregister("my_net")
    with pytest.raises(CheckpointError, match=r"unknown model 'my_net'.*freqlens.models.register"):
        load(path)


def test_registered_factory_returning_no_module_is_refused(mymodels):
    register("not_a_net", mymodels.make_dict)
    try:
        with pytest.raises(ModelError, match="returned a dict, not an nn.Module"):
            build("not_a_net")
    finally:
        unregister("not_a_net")


def test_normalize_imagenet_and_text_form(mymodels, tmp_path):
    class ThreeChannels(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    mean, std = NORMALIZATIONS["imagenet"]
    assert parse_normalize("imagenet") == (list(mean), list(std))
    assert parse_normalize("0.5,0.4,0.3/0.2,0.2,0.1") == ([0.5, 0.4, 0.3], [0.2, 0.2, 0.1])
    with pytest.raises(ModelError, match="MEAN,MEAN"):
        parse_normalize("0.5;0.2")
    model, record = load_user_model("mymodels:make", normalize="0.5/0.25")
    assert isinstance(model, Normalized) and model.mean.tolist() == [0.5] and model.std.tolist() == [0.25]
    assert record["normalize"] == {"mean": [0.5], "std": [0.25]}
    x = _images()
    torch.testing.assert_close(model(x), mymodels.make()((x - 0.5) / 0.25))
    path = tmp_path / "three.ts"
    torch.jit.save(torch.jit.script(ThreeChannels()), path)
    wrapped, record = load_model_file(path, normalize="imagenet")
    assert isinstance(wrapped, Normalized)
    torch.testing.assert_close(wrapped.mean, torch.tensor(mean))
    torch.testing.assert_close(wrapped.std, torch.tensor(std))
    rgb = torch.rand(2, 3, 8, 8)
    expected = ((rgb - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)).mean(dim=(2, 3))
    torch.testing.assert_close(wrapped(rgb), expected)


def test_model_args_are_python_literals_or_strings():
    assert parse_model_args(["width=4", "scale=0.5", "flag=True", "dims=[1, 2]", "name=resnet", "q='x y'",
                             "none=None"]) == {"width": 4, "scale": 0.5, "flag": True, "dims": [1, 2],
                                               "name": "resnet", "q": "x y", "none": None}
    with pytest.raises(ModelError, match="not KEY=VALUE"):
        parse_model_args(["width"])
    with pytest.raises(ModelError, match="given twice"):
        parse_model_args(["a=1", "a=2"])
