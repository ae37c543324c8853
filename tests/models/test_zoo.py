"""The model zoo: every shipped entry verified (file, sha256, weights-only load, accuracy on the shipped
sample; full test set for the two cheapest LeNets with the shared data), and the loader's checks on a
temporary zoo built from a tiny trained LeNet (tampered / truncated weights, unknown names, manifest
errors, ``models.load("zoo:NAME")``)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path

import pytest
import torch

import freqlens.zoo as public_zoo
from freqlens.data import load_dataset
from freqlens.errors import CheckpointError
from freqlens.models import build
from freqlens.models import load as load_model
from freqlens.models import zoo as zoo_module
from freqlens.training import train

REPO = Path(__file__).resolve().parents[2]
PACKAGE_ZOO = REPO / "src" / "freqlens" / "models" / "zoo"
SHIPPED = zoo_module.entries(PACKAGE_ZOO)
SAMPLE_TOLERANCE = TEST_TOLERANCE = 0.005


@torch.no_grad()
def accuracy(model, dataset, batch_size: int = 500) -> float:
    correct = 0
    for start in range(0, len(dataset), batch_size):
        part = slice(start, start + batch_size)
        correct += int((model(dataset.float_images(part)).argmax(1) == dataset.labels[part]).sum())
    return correct / len(dataset)


def _shipped_params():
    if not SHIPPED:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"the zoo manifest {PACKAGE_ZOO / 'manifest.json'} lists no model yet"))]
    return [pytest.param(item, id=item.name) for item in SHIPPED]


# ------------------------------------------------------------------------------------------ shipped entries
@pytest.mark.parametrize("item", _shipped_params())
def test_shipped_entry_is_verified_and_reaches_its_sample_accuracy(item):
    path = PACKAGE_ZOO / "weights" / f"{item.name}.pt"
    assert path.is_file(), f"{path} missing"
    data = path.read_bytes()
    assert len(data) == item.size and hashlib.sha256(data).hexdigest() == item.sha256
    state = torch.load(path, weights_only=True)
    assert all(t.dtype == torch.float16 for t in state.values() if t.is_floating_point())
    model = zoo_module.load(item.name, root=PACKAGE_ZOO)
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    sample = load_dataset(item.sample, split="test")
    assert len(sample) == item.sample_images
    assert accuracy(model, sample) == pytest.approx(item.sample_accuracy, abs=SAMPLE_TOLERANCE)
    assert item.command.split()[0].endswith("freqlens") and " train " in f" {item.command} "
    assert (item.robust_accuracy is None) == (item.robust_eval is None)
    if item.mode == "adversarial":
        assert item.robust_accuracy is not None and item.robust_eval["steps"] == 20


def _cheapest_lenets() -> list:
    lenets = [item for item in SHIPPED if item.architecture == "lenet"]
    lenets.sort(key=lambda item: (item.minutes if item.minutes is not None else float("inf"), item.name))
    params = [pytest.param(item, id=item.name) for item in lenets[:2]]
    for slot in range(len(params), 2):
        params.append(pytest.param(None, id=f"missing-{slot}", marks=pytest.mark.skip(
            reason=f"the zoo manifest has {len(lenets)} lenet entr{'y' if len(lenets) == 1 else 'ies'}; "
                   "this test checks the two cheapest")))
    return params


@pytest.mark.slow
@pytest.mark.parametrize("item", _cheapest_lenets())
def test_cheapest_lenets_reach_their_test_accuracy(item, shared_data):
    if item.dataset == "cifar10":
        test = load_dataset(shared_data / "cifar10" / "cifar10-jpeg.tar.gz", split="test", progress=False)
    elif item.dataset == "mnist":
        test = load_dataset("mnist", split="test", root=shared_data / "mnist")
    else:
        pytest.skip(f"{item.name}: no shared copy of its dataset {item.dataset!r}")
    assert len(test) == item.test_images
    model = zoo_module.load(item.name, root=PACKAGE_ZOO)
    assert accuracy(model, test) == pytest.approx(item.test_accuracy, abs=TEST_TOLERANCE)


def test_package_data_globs_ship_the_zoo():
    tomllib = pytest.importorskip("tomllib")
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["freqlens"]
    for relative in ("models/zoo/manifest.json", "models/zoo/weights/some-model.pt",
                     *(f"models/zoo/weights/{item.name}.pt" for item in SHIPPED)):
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in globs), relative


def test_shipped_manifest_is_sorted_and_valid_json():
    document = json.loads((PACKAGE_ZOO / "manifest.json").read_text())
    assert document["format"] == "freqlens-zoo" and document["version"] == 1
    names = [record["name"] for record in document["entries"]]
    assert names == sorted(names)


# ------------------------------------------------------------------------------------------ temporary zoo
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A LeNet trained a few batches on the demo digits, saved in a temporary zoo as ``tiny-lenet``."""
    root = tmp_path_factory.mktemp("zoo")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build("lenet", in_channels=1, num_classes=10)
        train(model, load_dataset("demo-mnist", "train").subset(range(0, 2000, 4)), epochs=1, lr=3e-3, progress=False)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    sample = load_dataset("demo-mnist", "test")
    add_entry(root, "tiny-lenet", model, sample_accuracy=accuracy(model, sample))
    return root, model


def add_entry(root: Path, name: str, model, **fields):
    """Write the float16 weights of ``model`` and a manifest entry for them into the zoo ``root``."""
    spec = model.freqlens_spec
    _, sha256, size = zoo_module.save_weights(name, model.state_dict(), root)
    record = {"name": name, "architecture": spec["name"], "kwargs": spec["kwargs"], "dataset": "mnist",
              "mode": "standard", "mode_config": {"name": "standard"},
              "command": f"freqlens train --dataset demo-mnist --model lenet --epochs 1 --out zoo-runs/{name}",
              "seed": 0, "epochs": 1, "best_epoch": 1, "minutes": 0.1, "test_accuracy": 0.5, "test_images": 500,
              "robust_accuracy": None, "robust_eval": None, "sample": "demo-mnist", "sample_accuracy": 0.5,
              "sample_images": 500, "sha256": sha256, "size": size, "notes": "test", **fields}
    return zoo_module.write_entry(record, root)


def test_loaded_model_is_the_float16_rounding_of_the_trained_one(tiny):
    root, model = tiny
    loaded = zoo_module.load("tiny-lenet", root=root)
    assert not loaded.training and all(p.dtype == torch.float32 for p in loaded.parameters())
    for key, value in loaded.state_dict().items():
        expected = model.state_dict()[key]
        assert torch.equal(value, expected.half().float() if expected.is_floating_point() else expected), key
    x = load_dataset("demo-mnist", "test").float_images(range(16))
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=0.05)
        assert torch.equal(loaded(x).argmax(1), model(x).argmax(1))


def test_weights_file_is_a_float16_state_dict_with_the_manifest_hash(tiny):
    root, _ = tiny
    item = zoo_module.entry("tiny-lenet", root)
    path = root / "weights" / "tiny-lenet.pt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == item.sha256 and path.stat().st_size == item.size
    state = torch.load(path, weights_only=True)
    floats = [t for t in state.values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)


def _copy_zoo(source: Path, target: Path) -> Path:
    (target / "weights").mkdir(parents=True)
    (target / "manifest.json").write_bytes((source / "manifest.json").read_bytes())
    for file in (source / "weights").iterdir():
        (target / "weights" / file.name).write_bytes(file.read_bytes())
    return target


def test_one_flipped_byte_is_refused_before_torch_load(tiny, tmp_path, monkeypatch):
    root = _copy_zoo(tiny[0], tmp_path / "zoo")
    path = root / "weights" / "tiny-lenet.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(CheckpointError, match="sha256.*tampered") as info:
        zoo_module.load("tiny-lenet", root=root)
    assert calls == [] and "\n" not in str(info.value)


def test_truncated_weights_are_refused(tiny, tmp_path):
    root = _copy_zoo(tiny[0], tmp_path / "zoo")
    path = root / "weights" / "tiny-lenet.pt"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        zoo_module.load("tiny-lenet", root=root)


def test_missing_weights_are_refused(tiny, tmp_path):
    root = _copy_zoo(tiny[0], tmp_path / "zoo")
    (root / "weights" / "tiny-lenet.pt").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        zoo_module.load("tiny-lenet", root=root)


def test_unknown_name_lists_the_known_ones(tiny, tmp_path):
    with pytest.raises(CheckpointError, match=r"unknown zoo model 'nope'; known: tiny-lenet"):
        zoo_module.entry("nope", tiny[0])
    with pytest.raises(CheckpointError, match="is empty"):
        zoo_module.load("nope", root=tmp_path)  # no manifest: an empty zoo


def test_models_load_accepts_zoo_names_through_the_env_var(tiny, monkeypatch):
    root, _ = tiny
    monkeypatch.setenv(zoo_module.ZOO_DIR_ENV, str(root))
    x = load_dataset("demo-mnist", "test").float_images(range(8))
    expected = zoo_module.load("tiny-lenet", root=root)(x)
    for reference in ("zoo:tiny-lenet", Path("zoo:tiny-lenet")):
        loaded = load_model(reference)
        assert not loaded.training
        assert torch.equal(loaded(x), expected)
    assert [item.name for item in public_zoo.entries()] == ["tiny-lenet"]
    assert public_zoo.entry("tiny-lenet").sample == "demo-mnist"
    assert torch.equal(public_zoo.load("tiny-lenet")(x), expected)
    with pytest.raises(CheckpointError, match="unknown zoo model 'other'"):
        load_model("zoo:other")


def test_manifest_entries_are_replaced_and_kept_sorted(tiny, tmp_path):
    root = _copy_zoo(tiny[0], tmp_path / "zoo")
    model = zoo_module.load("tiny-lenet", root=root)
    add_entry(root, "a-first", model)
    add_entry(root, "tiny-lenet", model, notes="replaced", foo_future_key=1)
    document = json.loads((root / "manifest.json").read_text())
    assert [record["name"] for record in document["entries"]] == ["a-first", "tiny-lenet"]
    item = zoo_module.entry("tiny-lenet", root)
    assert item.notes == "replaced" and item.extra == {"foo_future_key": 1}
    assert item.to_dict()["foo_future_key"] == 1
    assert not list(root.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_write_entry_refuses_a_record_whose_hash_does_not_match(tiny, tmp_path):
    root = _copy_zoo(tiny[0], tmp_path / "zoo")
    record = zoo_module.entry("tiny-lenet", root).to_dict()
    record.update(name="bad", sha256="0" * 64)
    (root / "weights" / "bad.pt").write_bytes((root / "weights" / "tiny-lenet.pt").read_bytes())
    with pytest.raises(CheckpointError, match="sha256"):
        zoo_module.write_entry(record, root)
    assert zoo_module.names(root) == ["tiny-lenet"]


@pytest.mark.parametrize("change, message", [
    (lambda doc: doc.update(format="other"), "not a freqlens zoo manifest"),
    (lambda doc: doc.update(version=99), "version 99"),
    (lambda doc: doc["entries"][0].pop("sha256"), "lacks the key 'sha256'"),
    (lambda doc: doc["entries"][0].update(test_accuracy="high"), "test_accuracy must be"),
    (lambda doc: doc["entries"][0].update(name="../escape"), "invalid zoo name"),
    (lambda doc: doc["entries"].append(dict(doc["entries"][0])), "lists a name twice"),
])
def test_damaged_manifests_are_checkpoint_errors(tiny, tmp_path, change, message):
    root = _copy_zoo(tiny[0], tmp_path / "zoo")
    document = json.loads((root / "manifest.json").read_text())
    change(document)
    (root / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match=message):
        zoo_module.entries(root)


def test_unreadable_manifest_is_a_checkpoint_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot be read"):
        zoo_module.entries(tmp_path)


def test_float16_state_refuses_values_beyond_float16():
    with pytest.raises(CheckpointError, match="not finite in float16"):
        zoo_module.float16_state({"w": torch.tensor([1e6])})
    half = zoo_module.float16_state({"w": torch.tensor([0.1]), "n": torch.tensor(3)})
    assert half["w"].dtype == torch.float16 and half["n"].dtype == torch.int64


def test_zoo_name_parsing():
    assert zoo_module.zoo_name("zoo:abc") == "abc"
    assert zoo_module.zoo_name(Path("zoo:abc")) == "abc"
    assert zoo_module.zoo_name("runs/best.pt") is None and zoo_module.zoo_name({"zoo:": 1}) is None
