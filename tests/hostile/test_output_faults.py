"""Filesystem faults on output folders: an ``--out`` that is a file, sits under a file, is read-only, or a
disk that fills up. Every command that writes checks its output folder before any work and fails with one
line (exit 2); a failed command removes the empty folders it created and keeps earlier complete files."""

from __future__ import annotations

import errno
import json
import os
import tempfile

import pytest
import torch

import freqlens.data
import freqlens.report
import freqlens.studies
import freqlens.studies.registry
from freqlens.cli import main
from freqlens.errors import FreqlensError, OutputError
from freqlens.utils import atomic_write_bytes, prepare_output_dir, removing_created_dirs_on_error

from .conftest import one_error_line

ENOSPC = os.strerror(errno.ENOSPC)
TRAIN = ["train", "--dataset", "demo-mnist", "--model", "lenet", "--max-batches", "2", "--quiet"]


def command(name: str, out, checkpoint) -> list[str]:
    """Small, fast arguments of ``freqlens NAME`` writing to ``out``."""
    common = ["--checkpoint", str(checkpoint), "--dataset", "demo-mnist"]
    return {
        "train": [*TRAIN, "--epochs", "1", "--out", str(out)],
        "explain": ["explain", *common, "--method", "saliency", "--n-images", "2", "--quiet", "--out", str(out)],
        "evaluate": ["evaluate", *common, "--methods", "saliency", "--forgrad", "none", "--n-images", "2",
                     "--steps", "2", "--samples", "4", "--quiet", "--out", str(out)],
        "attack": ["attack", *common, "--attack", "fgsm", "--n-images", "4", "--quiet", "--out", str(out)],
        "analyze": ["analyze", "footprints", *common, "--methods", "saliency", "--n-images", "2", "--out", str(out)],
        "study": ["study", "noise-tunnel", "--no-progress", "--out", str(out)],
        "demo": ["demo", "--quiet", "--out", str(out)],
        "report": ["report", str(out)],
    }[name]


COMMANDS = ["train", "explain", "evaluate", "attack", "analyze", "study", "demo", "report"]


@pytest.fixture
def no_work(monkeypatch):
    """Make any real work (loading data, running a study or the demo, building a report) fail the test:
    the output folder must be refused before it."""

    def started(*args, **kwargs):
        raise AssertionError("the command started working before checking its output folder")

    monkeypatch.setattr(freqlens.data, "load_dataset", started)
    monkeypatch.setattr(freqlens.studies.registry, "run_study", started)
    monkeypatch.setattr(freqlens.studies, "run_demo", started)
    monkeypatch.setattr(freqlens.report, "write_report", started)


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: creating files in ``folder`` fails with EROFS (a read-only mount), whatever
    the permissions (the tests may run as root, who ignores them)."""
    real = tempfile.mkstemp
    blocked = []

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and os.path.abspath(dir) in blocked:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return lambda folder: blocked.append(os.path.abspath(folder))


@pytest.fixture
def disk_full(monkeypatch):
    """``disk_full(after)``: every ``os.fsync`` after the first ``after`` ones fails with ENOSPC."""
    real = os.fsync

    def arm(after: int = 0) -> None:
        calls = []

        def fsync(fd):
            calls.append(fd)
            if len(calls) > after:
                raise OSError(errno.ENOSPC, ENOSPC)
            return real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    return arm


def _files(root) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.mark.parametrize("name", COMMANDS)
def test_out_that_is_an_existing_file(tmp_path, capsys, no_work, lenet_checkpoint, name):
    out = tmp_path / "taken"
    out.write_text("keep me")
    assert main(command(name, out, lenet_checkpoint)) == 2
    assert one_error_line(capsys) == f"freqlens: error: cannot use {out} as output folder: it is an existing file"
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("name", COMMANDS)
def test_out_under_a_file(tmp_path, capsys, no_work, lenet_checkpoint, name):
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    out = blocker / "a" / "run"
    assert main(command(name, out, lenet_checkpoint)) == 2
    assert one_error_line(capsys) == (f"freqlens: error: cannot create output folder {out}: {blocker} is a file, "
                                      "not a folder")
    assert _files(tmp_path) == ["taken"]


@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_out_is_refused_before_any_work(tmp_path, capsys, no_work, read_only, lenet_checkpoint, name):
    out = tmp_path / "new" / "run"  # created by the command, then removed again
    read_only(out)
    assert main(command(name, out, lenet_checkpoint)) == 2
    assert one_error_line(capsys) == f"freqlens: error: cannot write to output folder {out}: Read-only file system"
    assert _files(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
@pytest.mark.parametrize("name", ["train", "attack"])
def test_permission_denied_out(tmp_path, capsys, no_work, lenet_checkpoint, name):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(command(name, locked, lenet_checkpoint)) == 2
        assert one_error_line(capsys) == f"freqlens: error: cannot write to output folder {locked}: Permission denied"
        assert main(command(name, locked / "sub", lenet_checkpoint)) == 2
        assert one_error_line(capsys) == (f"freqlens: error: cannot create output folder {locked / 'sub'}: "
                                          "Permission denied")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("name, first_file", [("train", "best.pt"), ("attack", "rct.pt"), ("explain", "maps.pt")])
def test_full_disk_one_line_and_no_empty_folder_left(tmp_path, capsys, disk_full, lenet_checkpoint, name,
                                                      first_file):
    out = tmp_path / "new" / "run"
    disk_full()
    assert main(command(name, out, lenet_checkpoint)) == 2
    assert one_error_line(capsys) == f"freqlens: error: cannot write {out / first_file}: {ENOSPC}"
    assert _files(tmp_path) == []  # the folders it created are gone, and no temporary file is left


def test_full_disk_keeps_the_complete_files_of_earlier_epochs(tmp_path, capsys, disk_full):
    out = tmp_path / "run"
    disk_full(after=3)  # epoch 1 writes best.pt, last.pt and history.json; epoch 2's first write fails
    assert main([*TRAIN, "--epochs", "2", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert line in (f"freqlens: error: cannot write {out / name}: {ENOSPC}" for name in ("best.pt", "last.pt"))
    assert _files(tmp_path) == ["run", "run/best.pt", "run/history.json", "run/last.pt"]
    assert [entry["epoch"] for entry in json.loads((out / "history.json").read_text())] == [1]
    for name in ("best.pt", "last.pt"):
        assert torch.load(out / name, weights_only=True)["epoch"] == 1


def test_atomic_write_on_a_full_disk_names_the_destination_and_keeps_the_old_file(tmp_path, disk_full):
    path = atomic_write_bytes(tmp_path / "a.bin", b"old")
    disk_full()
    with pytest.raises(OutputError) as caught:
        atomic_write_bytes(path, b"new")
    assert str(caught.value) == f"cannot write {path}: {ENOSPC}"
    assert isinstance(caught.value, OSError) and isinstance(caught.value, FreqlensError)  # caches still tolerate it
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(path))
    assert path.read_bytes() == b"old" and _files(tmp_path) == ["a.bin"]


def test_prepare_output_dir_removes_only_the_empty_folders_it_created(tmp_path):
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError), removing_created_dirs_on_error() as created:
        assert prepare_output_dir(tmp_path / "kept") == tmp_path / "kept"
        assert prepare_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
        prepare_output_dir(tmp_path / "full")
        (tmp_path / "full" / "result.json").write_text("{}")
        assert created == [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "full"]
        raise RuntimeError("the command failed")
    assert _files(tmp_path) == ["full", "full/result.json", "kept"]


def test_prepare_output_dir_keeps_its_folders_when_the_block_succeeds(tmp_path):
    with removing_created_dirs_on_error():
        prepare_output_dir(tmp_path / "a" / "b")
    prepare_output_dir(tmp_path / "c")  # outside any block: nothing remembered, nothing removed
    assert _files(tmp_path) == ["a", "a/b", "c"]
