"""``--model PKG.MODULE:FACTORY`` / ``--weights`` / TorchScript / torch.export in every command (issue 15)."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap

import pytest
import torch

from freqlens.analysis.explain import explain_images
from freqlens.attacks import FGSM
from freqlens.cli import main
from freqlens.commands._common import pick_images
from freqlens.data import load_dataset
from freqlens.models import Normalized
from freqlens.spectral import rct

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


def make(width=4, mode="tensor"):
    torch.manual_seed(0)
    return Net(width, mode)


def make_dict():
    return {"not": "a module"}
'''

DATA = ["--dataset", "demo-mnist", "--n-images", "4"]


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """The module ``usermodels_cli`` on sys.path, a trained-looking net (seed 5) and its files."""
    root = tmp_path_factory.mktemp("user")
    (root / "usermodels_cli.py").write_text(textwrap.dedent(MODULE))
    sys.path.insert(0, str(root))
    import usermodels_cli

    torch.manual_seed(5)
    net = usermodels_cli.Net(width=3).eval()  # weights other than the factory's (seed 0)
    files = {"flat": root / "flat.pt", "nested": root / "nested.pt", "torchscript": root / "net.ts"}
    torch.save(net.state_dict(), files["flat"])
    torch.save({"model_state_dict": net.state_dict(), "optimizer": {}}, files["nested"])
    example = torch.rand(2, 1, 28, 28)
    torch.jit.save(torch.jit.trace(net, example), files["torchscript"])
    try:
        program = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, root / "net.pt2")
        files["export"] = root / "net.pt2"
    except Exception as error:  # noqa: BLE001 - any failure of torch.export (depends on the torch build)
        files["export_error"] = str(error)
    yield {"net": net, "files": files, "root": root}
    sys.path.remove(str(root))
    sys.modules.pop("usermodels_cli", None)


def _model_flags(user, source: str) -> list[str]:
    files = user["files"]
    if source in ("torchscript", "export"):
        if source not in files:
            pytest.skip(f"torch.export cannot export the test model on this torch: {files.get('export_error')}")
        return ["--checkpoint", str(files[source])]
    return ["--model", "usermodels_cli:make", "--model-args", "width=3", "--weights", str(files[source])]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("source,kind", [("flat", "factory"), ("nested", "factory"), ("torchscript", "torchscript"),
                                         ("export", "export")])
def test_explain_maps_equal_the_api(user, tmp_path, source, kind):
    argv = ["explain", *_model_flags(user, source), *DATA, "--method", "saliency", "--out", str(tmp_path)]
    assert main(argv) == 0
    saved = torch.load(tmp_path / "maps.pt", weights_only=True)
    expected = explain_images(user["net"], saved["images"], "saliency").maps
    torch.testing.assert_close(saved["maps"], expected)
    record = json.loads((tmp_path / "explain.json").read_text())["model"]
    assert record["kind"] == kind
    assert record["weights_sha256"] == _sha(user["files"][source])
    assert record["spec"] == ("usermodels_cli:make" if kind == "factory" else str(user["files"][source]))


@pytest.mark.parametrize("mode,output", [("tuple", "0"), ("dict", "logits")])
def test_tuple_and_dict_models_with_output(user, tmp_path, mode, output):
    argv = ["explain", "--model", "usermodels_cli:make", "--model-args", "width=3", f"mode={mode}", "--weights",
            str(user["files"]["flat"]), "--output", output, *DATA, "--method", "gradcam", "--out", str(tmp_path)]
    assert main(argv) == 0
    saved = torch.load(tmp_path / "maps.pt", weights_only=True)
    torch.testing.assert_close(saved["maps"], explain_images(user["net"], saved["images"], "gradcam").maps)
    record = json.loads((tmp_path / "explain.json").read_text())["model"]
    assert record["output"] == (0 if mode == "tuple" else "logits")
    assert record["model_args"] == {"width": 3, "mode": mode}


def test_normalize_wraps_the_model(user, tmp_path):
    argv = ["explain", *_model_flags(user, "flat"), "--normalize", "0.5/0.25", *DATA, "--method", "saliency",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    saved = torch.load(tmp_path / "maps.pt", weights_only=True)
    wrapped = Normalized(user["net"], [0.5], [0.25])
    torch.testing.assert_close(saved["maps"], explain_images(wrapped, saved["images"], "saliency").maps)
    record = json.loads((tmp_path / "explain.json").read_text())["model"]
    assert record["normalize"] == {"mean": [0.5], "std": [0.25]}


def test_evaluate_is_the_same_for_every_way_of_loading(user, tmp_path):
    results = {}
    for source in ("flat", "torchscript", *(("export",) if "export" in user["files"] else ())):
        out = tmp_path / source
        argv = ["evaluate", *_model_flags(user, source), *DATA, "--methods", "saliency,occlusion", "--forgrad",
                "none", "--steps", "4", "--samples", "8", "--quiet", "--out", str(out)]
        assert main(argv) == 0
        results[source] = json.loads((out / "results.json").read_text())
        assert results[source]["model"]["weights_sha256"] == _sha(user["files"][source])
    assert results["flat"]["model"]["spec"] == "usermodels_cli:make"
    assert results["flat"]["checkpoint"] is None
    for other in (source for source in results if source != "flat"):
        for flat, loaded in zip(results["flat"]["methods"], results[other]["methods"], strict=True):
            assert flat["method"] == loaded["method"]
            for metric, values in flat["metrics"].items():
                assert values["values"] == pytest.approx(loaded["metrics"][metric]["values"], abs=1e-5), (other, metric)
    assert [row["method"] for row in results["flat"]["methods"]] == ["saliency", "occlusion"]


@pytest.mark.parametrize("source", ["flat", "torchscript", "export"])
def test_attack_records_the_model_and_matches_the_api(user, tmp_path, source):
    argv = ["attack", *_model_flags(user, source), *DATA, "--attack", "fgsm", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "attack.json").read_text())
    saved = torch.load(tmp_path / "rct.pt", weights_only=True)
    images, labels = pick_images(load_dataset("demo-mnist", "test"), 4, 0, "cpu")
    assert torch.equal(saved["labels"], labels)
    clean = (user["net"](images).argmax(dim=1) == labels).float().mean().item()
    assert summary["clean_accuracy"] == pytest.approx(clean)
    adversarial = FGSM(user["net"], eps=8 / 255)(images, labels)  # deterministic: the same RCT map
    torch.testing.assert_close(saved["rct"], rct(images, adversarial), rtol=1e-4, atol=1e-5)
    assert summary["model"]["weights_sha256"] == _sha(user["files"][source])


def test_analyze_with_user_models_and_compare_model(user, tmp_path):
    flags = _model_flags(user, "flat")
    argv = ["analyze", "attribution-shift", *flags, "--compare-model", "usermodels_cli:make", "--compare-model-args",
            "width=3", "--compare-weights", str(user["files"]["nested"]), "--dataset", "demo-mnist", "--n-images",
            "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "attribution_shift.json").read_text())
    assert summary["model"]["kind"] == "factory" and summary["model"]["weights_sha256"] == _sha(user["files"]["flat"])
    assert summary["compare_model"]["weights_sha256"] == _sha(user["files"]["nested"])
    assert summary["compare"] == "usermodels_cli:make"


@pytest.mark.parametrize("flags,message", [
    (["--model", "nosuchmodule_cli:make"], "cannot import module 'nosuchmodule_cli' (No module named"),
    (["--model", "usermodels_cli:missing"], "module 'usermodels_cli' has no attribute 'missing'"),
    (["--model", "usermodels_cli:make_dict"], "usermodels_cli:make_dict returned a dict, not an nn.Module"),
    (["--model", "usermodels_cli:make", "--weights", "FLAT"], "do not fit the model: wrong shapes 'conv.weight'"),
    (["--model", "usermodels_cli:make", "--checkpoint", "FLAT"], "give --checkpoint or --model, not both"),
    ([], "give the model: --checkpoint FILE|zoo:NAME or --model PKG.MODULE:FACTORY"),
    (["--checkpoint", "FLAT"], "for a plain state dict give --model PKG.MODULE:FACTORY --weights"),
    (["--checkpoint", "FLAT", "--weights", "FLAT"], "--weights and --model-args go with --model"),
    (["--model", "usermodels_cli:make", "--model-args", "width=3", "mode='tuple'", "--weights", "FLAT", "--output",
      "5"], "the model returned a tuple of 2; output 5 is out of range"),
    (["--model", "usermodels_cli:make", "--model-args", "width=3", "--weights", "FLAT", "--normalize", "x/y"],
     "normalize: expected imagenet, cifar10, mnist or MEAN"),
])
@pytest.mark.parametrize("command", ["explain", "evaluate", "attack"])
def test_bad_models_give_one_line_errors(user, tmp_path, capsys, flags, message, command):
    flags = [str(user["files"]["flat"]) if flag == "FLAT" else flag for flag in flags]
    extra = {"explain": ["--method", "saliency", "--quiet"],
             "evaluate": ["--methods", "saliency", "--forgrad", "none", "--quiet"],
             "attack": ["--attack", "fgsm", "--quiet"]}[command]
    assert main([command, *flags, *DATA, *extra, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("freqlens: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "out").exists()

