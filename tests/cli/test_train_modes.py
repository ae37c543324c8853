"""``freqlens train --mode noise-modulation|adversarial``: runs, records the mode, rejects bad settings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from freqlens.cli import main


def _train(tmp_path, *extra: str) -> tuple[int, list, dict]:
    out = tmp_path / "run"
    code = main(["train", "--dataset", "demo-mnist", "--model", "lenet", "--epochs", "1", "--batch-size", "32",
                 "--max-batches", "3", "--out", str(out), "--quiet", *extra])
    history = json.loads((out / "history.json").read_text())
    checkpoint = torch.load(out / "last.pt", weights_only=True, map_location="cpu")
    return code, history, checkpoint


def test_noise_modulation_runs_and_records_the_mode(tmp_path, capsys):
    code, history, checkpoint = _train(tmp_path, "--mode", "noise-modulation", "--beta", "0.5",
                                       "--noise", "laplace")
    assert code == 0 and len(history) == 1
    assert history[0]["mode"] == "noise-modulation"
    assert checkpoint["mode"] == {"name": "noise-modulation", "beta": 0.5, "noise": "laplace"}
    assert "trained lenet for 1 epochs" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--attack", "pgd", "--eps", "8/255", "--steps", "2"],
         {"attack": "PGD", "eps": 8 / 255, "alpha": 2 / 255, "steps": 2, "norm": "inf"}),
        (["--attack", "pgd", "--eps", "0.5", "--alpha", "1/10", "--steps", "2", "--attack-norm", "2"],
         {"attack": "PGD", "eps": 0.5, "alpha": 0.1, "steps": 2, "norm": "2"}),
        (["--attack", "fgsm", "--eps", "0.1"], {"attack": "FGSM", "eps": 0.1}),
        (["--attack", "fast-fgsm", "--eps", "8/255"], {"attack": "FastFGSM", "eps": 8 / 255, "alpha": 10 / 255}),
    ],
)
def test_adversarial_runs_and_records_the_attack(tmp_path, flags, expected):
    code, history, checkpoint = _train(tmp_path, "--mode", "adversarial", *flags)
    assert code == 0 and history[0]["mode"] == "adversarial"
    mode = checkpoint["mode"]
    assert mode["name"] == "adversarial"
    for key, value in expected.items():
        assert mode[key] == pytest.approx(value) if isinstance(value, float) else mode[key] == value


def test_max_batches_limits_the_epoch(tmp_path):
    _, _, checkpoint = _train(tmp_path)
    assert checkpoint["train_config"]["max_batches_per_epoch"] == 3
    assert checkpoint["mode"] == {"name": "standard"}


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--mode", "noise-modulation", "--noise", "pink"], "unknown noise 'pink'"),
        (["--mode", "noise-modulation", "--beta", "1.5"], "beta must be in [0, 1]"),
        (["--mode", "adversarial", "--eps", "0"], "--eps and --alpha must be positive"),
        (["--mode", "adversarial", "--attack", "fgsm", "--attack-norm", "2"], "L∞ attack"),
    ],
)
def test_bad_mode_settings_print_one_line_and_exit_2(tmp_path, flags, fragment):
    result = subprocess.run(
        [sys.executable, "-m", "freqlens", "train", "--dataset", "demo-mnist", "--model", "lenet", "--epochs", "1",
         "--out", str(tmp_path / "r"), "--quiet", *flags],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "r" / "last.pt").exists()
