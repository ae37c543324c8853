"""Small command-line messages: warnings as ``freqlens: warning: MESSAGE`` (no source line), the attack's
label-range error over every image (not only the first work unit's), and any other filesystem fault as
one line."""

from __future__ import annotations

import errno
import warnings

import pytest
import torch

import freqlens.report
from freqlens.cli import main
from freqlens.data import load_dataset, pick_indices
from freqlens.models import build, save_model

from .conftest import one_error_line


def test_warnings_print_as_one_freqlens_line(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"an earlier run")  # train warns that it will overwrite it
    before = warnings.showwarning
    assert main(["train", "--dataset", "demo-mnist", "--model", "lenet", "--epochs", "1", "--max-batches", "2",
                 "--quiet", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err == (f"freqlens: warning: {out} already holds checkpoints of an earlier run; they will be "
                   "overwritten (pass resume=True to continue that run instead)\n")
    assert warnings.showwarning is before  # restored after the command


def _labels(seed: int, count: int) -> torch.Tensor:
    """The labels ``freqlens attack --seed SEED --n-images COUNT`` draws from the demo test split."""
    test = load_dataset("demo-mnist", "test")
    return test.labels[pick_indices(len(test), count, seed)]


def test_attack_label_range_error_covers_every_image(tmp_path, capsys):
    """A 5-class model on the 10-class demo data: the message gives the range of all the drawn labels,
    not that of the first (or any single) work unit of 2 images."""
    checkpoint = save_model(build("lenet", in_channels=1, num_classes=5), tmp_path / "five.pt")
    count, shard = 16, 2

    def no_unit_spans_the_range(labels: torch.Tensor) -> bool:
        whole = (int(labels.min()), int(labels.max()))
        return all((int(part.min()), int(part.max())) != whole for part in labels.split(shard))

    seed = next(s for s in range(50) if no_unit_spans_the_range(_labels(s, count)))
    labels = _labels(seed, count)
    code = main(["attack", "--checkpoint", str(checkpoint), "--dataset", "demo-mnist", "--attack", "fgsm",
                 "--n-images", str(count), "--shard-size", str(shard), "--seed", str(seed), "--quiet",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    line = one_error_line(capsys)
    assert line.startswith("freqlens: error: fgsm on demo-mnist: labels must lie in [0, 5)")
    assert line.endswith(f"got values in [{int(labels.min())}, {int(labels.max())}]")
    assert not (tmp_path / "out").exists()  # the folder the failed command created is removed


def test_other_filesystem_faults_are_one_line(tmp_path, capsys, monkeypatch):
    """An OSError that is not a write through the atomic writers (here: reading) still gives one line
    with the file and the reason."""

    def unreadable(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "study/figure.png")

    monkeypatch.setattr(freqlens.report, "write_report", unreadable)
    assert main(["report", str(tmp_path / "new")]) == 2
    assert one_error_line(capsys) == "freqlens: error: study/figure.png: Permission denied"
    assert not (tmp_path / "new").exists()


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    def unreadable(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "study/figure.png")

    monkeypatch.setattr(freqlens.report, "write_report", unreadable)
    with pytest.raises(PermissionError):
        main(["--debug", "report", str(tmp_path)])
