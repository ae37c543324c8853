"""``scripts/zoo_add.py`` on a tiny run, ``freqlens zoo list|show|build`` and ``--checkpoint zoo:NAME`` in
explain, evaluate, attack and analyze — all on a temporary zoo (``$FREQLENS_ZOO_DIR``), so nothing here
depends on the models shipped in the package."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shlex
from pathlib import Path

import pytest
import torch

from freqlens.cli import main
from freqlens.data import load_dataset, pick_indices
from freqlens.models import load, save_model
from freqlens.models import zoo as zoo_module

REPO = Path(__file__).resolve().parents[1].parent
NAME = "tiny-lenet-demo"


def _script():
    spec = importlib.util.spec_from_file_location("zoo_add_script", REPO / "scripts" / "zoo_add.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """A LeNet trained 3 batches on the demo digits by ``freqlens train``, added by the script with
    ``--command`` and ``--robust yes`` to a temporary zoo; ``(zoo dir, run dir, command)``."""
    root = tmp_path_factory.mktemp("tiny-zoo")
    run = root / "runs" / NAME
    command = ["--threads", "1", "train", "--dataset", "demo-mnist", "--model", "lenet", "--epochs", "1",
               "--max-batches", "3", "--lr", "3e-3", "--quiet", "--out", str(run)]
    threads = torch.get_num_threads()
    try:
        assert main(command) == 0
        (run.parent / f"{NAME}.time").write_text("Command exited with non-zero status 0\n90.0 s\n")
        code = _script().main([str(run), "--name", NAME, "--zoo-dir", str(root / "zoo"),
                               "--command", shlex.join(["freqlens", *command]), "--notes", "tiny",
                               "--robust", "yes", "--pgd-images", "20", "--batch-size", "100"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return root / "zoo", run, shlex.join(["freqlens", *command])


@pytest.fixture
def zoo_env(tiny_zoo, monkeypatch):
    monkeypatch.setenv(zoo_module.ZOO_DIR_ENV, str(tiny_zoo[0]))
    return tiny_zoo


@torch.no_grad()
def _accuracy(model, dataset) -> float:
    return int((model(dataset.float_images()).argmax(1) == dataset.labels).sum()) / len(dataset)


# ---------------------------------------------------------------------------------------------- the script
def test_script_records_the_run(tiny_zoo):
    root, run, command = tiny_zoo
    item = zoo_module.entry(NAME, root)
    data = (root / "weights" / f"{NAME}.pt").read_bytes()
    assert item.sha256 == hashlib.sha256(data).hexdigest() and item.size == len(data)
    assert item.command == command and item.notes == "tiny"
    assert (item.architecture, item.dataset, item.mode, item.sample) == ("lenet", "mnist", "standard", "demo-mnist")
    assert (item.epochs, item.best_epoch, item.seed, item.minutes) == (1, 1, 0, 1.5)  # 90 s from RUN.time
    assert item.training["max_batches_per_epoch"] == 3
    assert item.kwargs == load(run / "best.pt").freqlens_spec["kwargs"]
    shipped = zoo_module.load(NAME, root=root)
    sample, test = load_dataset("demo-mnist", "test"), load_dataset("demo-mnist", "test")
    assert (item.sample_images, item.test_images) == (500, 500)
    assert item.sample_accuracy == _accuracy(shipped, sample)
    assert item.test_accuracy == _accuracy(shipped, test)
    settings = item.robust_eval
    assert (settings["eps"], settings["alpha"], settings["steps"], settings["n_images"]) == (0.3, 0.075, 20, 20)
    assert 0 <= item.robust_accuracy <= item.test_accuracy + 0.25
    assert item.robust_accuracy * 20 == pytest.approx(round(item.robust_accuracy * 20))


def test_script_rebuilds_a_command_and_skips_pgd_for_standard_runs(tiny_zoo, tmp_path):
    _, run, _ = tiny_zoo
    zoo_dir = tmp_path / "zoo"
    assert _script().main([str(run), "--name", "rebuilt", "--zoo-dir", str(zoo_dir), "--dataset", "demo-mnist"]) == 0
    item = zoo_module.entry("rebuilt", zoo_dir)
    assert item.robust_accuracy is None and item.robust_eval is None
    argv = shlex.split(item.command)
    assert argv[0] == "freqlens" and "train" in argv
    for flag, value in (("--dataset", "demo-mnist"), ("--model", "lenet"), ("--epochs", "1"), ("--max-batches", "3"),
                        ("--lr", "0.003"), ("--seed", "0"), ("--out", "zoo-runs/rebuilt")):
        assert argv[argv.index(flag) + 1] == value, flag
    assert "rebuilt from the checkpoint" in item.notes


def test_script_refuses_a_command_that_is_not_freqlens_train(tiny_zoo, tmp_path, capsys):
    _, run, _ = tiny_zoo
    code = _script().main([str(run), "--name", "x", "--zoo-dir", str(tmp_path), "--dataset", "demo-mnist",
                           "--command", "python train.py"])
    assert code == 2 and "not a freqlens command line" in capsys.readouterr().err
    assert zoo_module.entries(tmp_path) == []


# ---------------------------------------------------------------------------------------------- zoo:NAME
@pytest.fixture
def same_model_file(zoo_env, tmp_path):
    """A plain checkpoint of the zoo model (same float32 weights): the reference for the commands."""
    return save_model(zoo_module.load(NAME), tmp_path / "same.pt")


def test_explain_accepts_a_zoo_name(same_model_file, tmp_path):
    outputs = {}
    for label, checkpoint in (("zoo", f"zoo:{NAME}"), ("file", str(same_model_file))):
        out = tmp_path / label
        assert main(["explain", "--checkpoint", checkpoint, "--dataset", "demo-mnist", "--method", "saliency",
                     "--n-images", "4", "--out", str(out)]) == 0
        outputs[label] = torch.load(out / "maps.pt", weights_only=True)["maps"]
    assert json.loads((tmp_path / "zoo" / "explain.json").read_text())["checkpoint"] == f"zoo:{NAME}"
    assert torch.equal(outputs["zoo"], outputs["file"])


def test_evaluate_accepts_a_zoo_name(same_model_file, tmp_path):
    results = {}
    for label, checkpoint in (("zoo", f"zoo:{NAME}"), ("file", str(same_model_file))):
        out = tmp_path / label
        assert main(["evaluate", "--checkpoint", checkpoint, "--dataset", "demo-mnist", "--methods", "saliency",
                     "--forgrad", "none", "--n-images", "4", "--steps", "4", "--samples", "8", "--quiet",
                     "--out", str(out)]) == 0
        results[label] = json.loads((out / "results.json").read_text())
    assert results["zoo"]["checkpoint"] == f"zoo:{NAME}"
    assert results["zoo"]["methods"][0]["metrics"]["deletion"] == results["file"]["methods"][0]["metrics"]["deletion"]


def test_attack_accepts_a_zoo_name(zoo_env, tmp_path):
    out = tmp_path / "out"
    assert main(["attack", "--checkpoint", f"zoo:{NAME}", "--dataset", "demo-mnist", "--attack", "fgsm",
                 "--n-images", "16", "--quiet", "--out", str(out)]) == 0
    summary = json.loads((out / "attack.json").read_text())
    test = load_dataset("demo-mnist", "test")
    chosen = pick_indices(len(test), 16, seed=0)
    with torch.no_grad():
        clean = (zoo_module.load(NAME)(test.float_images(chosen)).argmax(1) == test.labels[chosen]).float().mean()
    assert summary["clean_accuracy"] == pytest.approx(float(clean))


def test_analyze_accepts_a_zoo_name(same_model_file, tmp_path):
    profiles = {}
    for label, checkpoint in (("zoo", f"zoo:{NAME}"), ("file", str(same_model_file))):
        out = tmp_path / label
        assert main(["analyze", "occluded-frequency", "--checkpoint", checkpoint, "--dataset", "demo-mnist",
                     "--n-images", "2", "--out", str(out)]) == 0
        profiles[label] = json.loads((out / "occluded_frequency.json").read_text())["per_image"]
    assert profiles["zoo"] == profiles["file"]


def test_unknown_zoo_name_is_one_line_exit_2(zoo_env, tmp_path, capsys):
    code = main(["attack", "--checkpoint", "zoo:nope", "--dataset", "demo-mnist", "--attack", "fgsm",
                 "--n-images", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert f"unknown zoo model 'nope'; known: {NAME}" in err


# ---------------------------------------------------------------------------------------------- freqlens zoo
def test_zoo_list_prints_the_table(zoo_env, capsys):
    assert main(["zoo", "list"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:4] == ["name", "architecture", "dataset", "mode"]
    item = zoo_module.entry(NAME)
    assert row.split()[:4] == [NAME, "lenet", "mnist", "standard"]
    assert f"{100 * item.test_accuracy:.2f}%" in row and f"{100 * item.sample_accuracy:.2f}%" in row
    assert f"{item.size / 1e6:.2f}" in row and row.endswith("1.5")


def test_zoo_list_of_an_empty_zoo(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(zoo_module.ZOO_DIR_ENV, str(tmp_path))
    assert main(["zoo", "list"]) == 0
    assert "the zoo is empty" in capsys.readouterr().out


def test_zoo_show_prints_the_entry(zoo_env, capsys):
    assert main(["zoo", "show", NAME]) == 0
    assert json.loads(capsys.readouterr().out) == zoo_module.entry(NAME).to_dict()


def test_zoo_build_dry_run_prints_the_recorded_command(zoo_env, tmp_path, capsys):
    _, run, command = zoo_env
    out = tmp_path / "again"
    assert main(["zoo", "build", NAME, "--out", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == command.replace(shlex.quote(str(run)), shlex.quote(str(out)))
    assert not out.exists()
    assert main(["zoo", "build", NAME, "--out", str(out), "--data", "/data/mnist", "--dry-run"]) == 0
    printed = shlex.split(capsys.readouterr().out)
    assert printed[printed.index("--data-dir") + 1] == "/data/mnist"  # demo is a name: --data sets --data-dir


def test_zoo_build_replaces_a_path_dataset(tmp_path, monkeypatch, tiny_zoo, capsys):
    from freqlens.commands.zoo import build_argv

    command = "freqlens --threads 1 train --dataset ../shared/data/cifar10/cifar10-jpeg.tar.gz --out=zoo-runs/x"
    argv = build_argv(command, tmp_path / "o", "/elsewhere/cifar.tar.gz")
    assert argv == ["--threads", "1", "train", "--dataset", "/elsewhere/cifar.tar.gz", f"--out={tmp_path / 'o'}"]
    record = zoo_module.entry(NAME, tiny_zoo[0]).to_dict()
    record["command"] = command
    zoo_dir = tmp_path / "zoo"
    (zoo_dir / "weights").mkdir(parents=True)
    (zoo_dir / "weights" / f"{NAME}.pt").write_bytes((tiny_zoo[0] / "weights" / f"{NAME}.pt").read_bytes())
    zoo_module.write_entry(record, zoo_dir)
    monkeypatch.setenv(zoo_module.ZOO_DIR_ENV, str(zoo_dir))
    monkeypatch.chdir(tmp_path)  # the recorded relative archive path does not exist from here
    assert main(["zoo", "build", NAME, "--out", str(tmp_path / "o")]) == 2
    assert "pass --data PATH" in capsys.readouterr().err


def test_zoo_build_retrains_the_entry(zoo_env, tmp_path, capsys):
    out = tmp_path / "again"
    assert main(["zoo", "build", NAME, "--out", str(out)]) == 0
    assert f"retraining {NAME}" in capsys.readouterr().out
    retrained, original = load(out / "best.pt"), zoo_module.load(NAME)
    for key, value in retrained.state_dict().items():  # same command and seed: the same weights, up to float16
        torch.testing.assert_close(value.half().float(), original.state_dict()[key], atol=0, rtol=0)


def test_zoo_build_of_an_unknown_name(zoo_env, tmp_path, capsys):
    assert main(["zoo", "build", "nope", "--out", str(tmp_path), "--dry-run"]) == 2
    assert "unknown zoo model 'nope'" in capsys.readouterr().err
