"""Atomic writes: complete file or the old one, normal permissions, no temporary left behind."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from freqlens.utils import atomic_save_torch, atomic_write_bytes, atomic_write_json


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.bin"]


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "result.json"
    atomic_write_json(path, {"a": 1})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": Unserialisable()})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        atomic_save_torch(path, {"f": lambda: 0})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_torch_roundtrip(tmp_path):
    path = atomic_save_torch(tmp_path / "t.pt", {"w": torch.arange(3)})
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3))
