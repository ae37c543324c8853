"""Downloads against a loopback HTTP server (never the internet): official MNIST checksums, resume with
Range, checksum mismatch, HTTP errors, mirror fallback, CIFAR-10 download and extraction."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
import tarfile

import numpy as np
import pytest
import torch

from freqlens.data import download, load_dataset
from freqlens.data.download import download_url
from freqlens.errors import ChecksumError, DataError

T10K = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def md5_of(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_official_mnist_t10k_download_then_load(shared_data, http_server, tmp_path, monkeypatch):
    base, server = http_server(shared_data)
    # the first mirror lacks the files (404): the second one must be used
    monkeypatch.setenv("FREQLENS_MNIST_MIRROR", f"{base}/nowhere/,{base}/mnist/")
    root = tmp_path / "mnist"
    dataset = load_dataset("mnist", "test", root=root, download=True, progress=False)
    assert len(dataset) == 10_000 and dataset.labels[:5].tolist() == [7, 2, 1, 0, 4]
    for name in T10K:
        assert (root / name).read_bytes() == (shared_data / "mnist" / name).read_bytes()
        assert not (root / (name + ".part")).exists()
    assert {p for p, _ in server.requests} >= {f"/mnist/{n}" for n in T10K}
    # already present and valid: not downloaded again
    count = len(server.requests)
    load_dataset("mnist", "test", root=root, download=True, progress=False)
    assert len(server.requests) == count


def test_mnist_files_are_checked_against_the_official_checksums(shared_data):
    for name in T10K:  # the shared copies hold the official content (their gzip headers may differ)
        assert download._mnist_verifier(name)(shared_data / "mnist" / name) is None
    raw = gzip.decompress((shared_data / "mnist" / T10K[1]).read_bytes())
    assert hashlib.md5(raw).hexdigest() == download.MNIST_FILES[T10K[1]][1]


def test_tampered_mnist_file_is_rejected(shared_data, http_server, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    raw = bytearray(gzip.decompress((shared_data / "mnist" / T10K[1]).read_bytes()))
    raw[8] = (raw[8] + 1) % 10  # one label changed: still a valid idx file
    (served / T10K[1]).write_bytes(gzip.compress(bytes(raw)))
    shutil.copy(shared_data / "mnist" / T10K[0], served / T10K[0])
    base, _ = http_server(served)
    monkeypatch.setenv("FREQLENS_MNIST_MIRROR", base)
    root = tmp_path / "root"
    with pytest.raises(ChecksumError, match=T10K[1]):
        load_dataset("mnist", "test", root=root, download=True, progress=False)
    assert not (root / T10K[1]).exists() and not (root / (T10K[1] + ".part")).exists()


def test_checksum_mismatch_leaves_no_file(shared_data, http_server, tmp_path):
    base, _ = http_server(shared_data)
    dest = tmp_path / "labels.gz"
    with pytest.raises(ChecksumError, match="checksum mismatch") as info:
        download_url(f"{base}/mnist/{T10K[1]}", dest, md5="0" * 32, progress=False)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("checksum", ["md5", "sha256"])
def test_download_with_checksum(shared_data, http_server, tmp_path, checksum):
    source = shared_data / "mnist" / T10K[1]
    base, _ = http_server(shared_data)
    digest = hashlib.new(checksum, source.read_bytes()).hexdigest()
    dest = download_url(
        f"{base}/mnist/{T10K[1]}", tmp_path / "sub" / "x.gz", progress=False, **{checksum: digest}
    )
    assert dest.read_bytes() == source.read_bytes()


@pytest.mark.parametrize("range_support", [True, False])
def test_resume_from_partial_file(shared_data, http_server, tmp_path, range_support):
    source = shared_data / "mnist" / T10K[0]
    data = source.read_bytes()
    base, server = http_server(shared_data, range_support=range_support)
    dest = tmp_path / T10K[0]
    (tmp_path / (T10K[0] + ".part")).write_bytes(data[:600_000])
    download_url(f"{base}/mnist/{T10K[0]}", dest, md5=md5_of(source), progress=False)
    assert dest.read_bytes() == data and not (tmp_path / (T10K[0] + ".part")).exists()
    assert server.requests == [(f"/mnist/{T10K[0]}", "bytes=600000-")]  # resumed with a Range request


def test_complete_part_file_is_verified_and_used(shared_data, http_server, tmp_path):
    source = shared_data / "mnist" / T10K[1]
    base, server = http_server(shared_data)
    shutil.copy(source, tmp_path / "l.gz.part")
    download_url(f"{base}/mnist/{T10K[1]}", tmp_path / "l.gz", md5=md5_of(source), progress=False)
    assert (tmp_path / "l.gz").read_bytes() == source.read_bytes()
    assert len(server.requests) == 1  # one 416 answer, no second transfer


def test_no_resume_downloads_afresh(shared_data, http_server, tmp_path):
    source = shared_data / "mnist" / T10K[1]
    base, server = http_server(shared_data)
    (tmp_path / "l.gz.part").write_bytes(b"stale bytes")
    download_url(f"{base}/mnist/{T10K[1]}", tmp_path / "l.gz", resume=False, progress=False)
    assert (tmp_path / "l.gz").read_bytes() == source.read_bytes()
    assert server.requests[0][1] is None


def test_http_404_is_a_data_error(shared_data, http_server, tmp_path):
    base, _ = http_server(shared_data)
    with pytest.raises(DataError, match="HTTP 404") as info:
        download_url(f"{base}/mnist/no-such-file.gz", tmp_path / "x.gz", progress=False)
    assert not isinstance(info.value, ChecksumError)
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_is_a_data_error(tmp_path):
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataError, match="cannot download"):
        download_url(f"http://127.0.0.1:{port}/x.gz", tmp_path / "x.gz", progress=False, timeout=5)


def test_cifar10_download_extract_and_load(fake_cifar, http_server, tmp_path, monkeypatch):
    # an archive in the official layout, with fake batches; its MD5 stands in for the official one
    staging = tmp_path / "staging"
    written = fake_cifar(staging / "cifar-10-batches-py")
    served = tmp_path / "served"
    served.mkdir()
    archive = served / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(download, "CIFAR10_ARCHIVE", ("cifar-10-python.tar.gz", md5_of(archive)))
    base, _ = http_server(served)
    monkeypatch.setenv("FREQLENS_CIFAR10_MIRROR", base)
    root = tmp_path / "root"
    dataset = load_dataset("cifar10", "test", root=root, download=True, progress=False)
    assert torch.equal(dataset.images, torch.from_numpy(written["test"][0]))
    assert np.array_equal(dataset.labels.numpy(), written["test"][1])
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


def test_cifar10_wrong_checksum(fake_cifar, http_server, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "cifar-10-python.tar.gz").write_bytes(b"not the real archive")
    base, _ = http_server(served)
    monkeypatch.setenv("FREQLENS_CIFAR10_MIRROR", base)
    with pytest.raises(ChecksumError, match="c58f30108f718f92721af3b95e74349a"):
        load_dataset("cifar10", "train", root=tmp_path / "root", download=True, progress=False)
    assert list((tmp_path / "root").iterdir()) == []


def test_module_level_mirror_table_is_used(shared_data, http_server, tmp_path, monkeypatch):
    monkeypatch.delenv("FREQLENS_MNIST_MIRROR", raising=False)
    base, server = http_server(shared_data)
    monkeypatch.setitem(download.MIRRORS, "mnist", [f"{base}/mnist"])  # no trailing slash on purpose
    dataset = load_dataset("mnist", "test", root=tmp_path, download=True, progress=False)
    assert len(dataset) == 10_000 and len(server.requests) == 2
