"""The command line: help, user errors (one line, exit 2, no traceback), train and demo end to end."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from freqlens.cli import main
from freqlens.commands._common import number


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "freqlens", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_help_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("demo", "train", "report"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--dataset", "no-such-dataset", "--model", "lenet", "--out", "{tmp}/r"], "no-such-dataset"),
        (["train", "--dataset", "demo-mnist", "--model", "no-such-model", "--out", "{tmp}/r"], "no-such-model"),
        (["train", "--dataset", "{tmp}/missing.tar.gz", "--model", "lenet", "--out", "{tmp}/r"], "missing.tar.gz"),
        (["train", "--dataset", "{tmp}/corrupt.tar.gz", "--model", "lenet", "--out", "{tmp}/r"], "corrupt.tar.gz"),
        (["report", "{tmp}/empty"], "no study results"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(tmp_path, args, fragment):
    (tmp_path / "corrupt.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not a tarball")
    (tmp_path / "empty").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    fragment = fragment.replace("{tmp}", str(tmp_path))
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("freqlens: error:"), result.stderr
    assert fragment in lines[0]


def test_a_reader_that_leaves_early_is_not_an_error():
    """`freqlens zoo list | head -1`: the closed pipe ends the command quietly (no 'freqlens: error')."""
    read_end, write_end = os.pipe()
    process = subprocess.Popen([sys.executable, "-m", "freqlens", "zoo", "list"], stdout=write_end,
                               stderr=subprocess.PIPE)
    os.close(write_end)
    os.close(read_end)  # the reader leaves before the command writes (it imports torch first)
    _, stderr = process.communicate(timeout=300)
    assert b"error" not in stderr and b"Traceback" not in stderr
    assert process.returncode in (0, 1)


def test_number_accepts_fractions():
    assert number("8/255") == pytest.approx(8 / 255)
    assert number("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError):
        number("eight")


def test_train_writes_checkpoints_and_history(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "demo-mnist", "--model", "lenet", "--epochs", "2", "--out", str(out), "--quiet",
                 "--vii"])
    assert code == 0
    history = json.loads((out / "history.json").read_text())
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert all(0.0 <= entry["val_vii"] <= 1.0 for entry in history)
    assert history[-1]["val_accuracy"] > 0.5  # 10 classes: chance is 0.1
    from freqlens.models import load

    model = load(out / "best.pt")
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert "best test accuracy" in capsys.readouterr().out
    # --resume on a finished run trains nothing more and keeps the history
    assert main(["train", "--dataset", "demo-mnist", "--model", "lenet", "--epochs", "2", "--out", str(out),
                 "--quiet", "--resume", "--vii"]) == 0
    assert json.loads((out / "history.json").read_text()) == history


def test_demo_writes_self_contained_report(tmp_path):
    result = run_cli("demo", "--out", str(tmp_path), "--quiet", "--studies", "noise-tunnel")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r"<img src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    results = json.loads((tmp_path / "noise-tunnel" / "results.json").read_text())
    assert len(images) == len(results["figures"]) >= 3
    import base64

    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data in images)
    # the zoo's model, nothing trained: its accuracy on the shipped sample is the manifest's
    from freqlens.models import zoo

    name = results["summary"]["model"].removeprefix("zoo:")
    assert results["summary"]["model"] == f"zoo:{name}" and results["summary"]["model reused (zoo or cache)"]
    assert results["summary"]["test accuracy"] == pytest.approx(zoo.entry(name).sample_accuracy, abs=0.005)
    assert not list(tmp_path.glob("cache/*/best.pt"))
    assert f"zoo:{name}" in page.partition("<h2")[0]  # the overview names the model analysed
    assert "<script" not in page.lower()


def test_demo_rejects_an_unknown_study(tmp_path):
    result = run_cli("demo", "--out", str(tmp_path), "--quiet", "--studies", "noise-tunnel,nope")
    assert result.returncode == 2
    assert "unknown study 'nope'" in result.stderr
    assert not (tmp_path / "noise-tunnel").exists()


def test_threads_flag_and_environment(tmp_path, monkeypatch, capsys):
    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    try:
        monkeypatch.delenv("FREQLENS_THREADS", raising=False)
        assert main(["--threads", str(target), "report", str(tmp_path)]) == 2  # nothing to report, threads set
        assert torch.get_num_threads() == target
        torch.set_num_threads(before)
        monkeypatch.setenv("FREQLENS_THREADS", str(target))
        main(["report", str(tmp_path)])
        assert torch.get_num_threads() == target
        monkeypatch.setenv("FREQLENS_THREADS", "many")
        assert main(["report", str(tmp_path)]) == 2
        assert "FREQLENS_THREADS must be a positive integer, got 'many'" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
