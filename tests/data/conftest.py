"""Fixtures of the freqlens.data tests: idx/CIFAR writers written independently of the package, a loopback
HTTP server with Range support, and the real CIFAR-10 JPEG archive decoded once per session."""

from __future__ import annotations

import gzip
import http.server
import pickle
import re
import struct
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from freqlens.data import load_dataset

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------------------------------------------------
# writers in the official formats (independent of freqlens.data.idx)
# ---------------------------------------------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    """idx encoding by the spec: 0, 0, type 0x08, ndim, big-endian uint32 sizes, then the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes(order="C")


def write_idx(path: Path, array: np.ndarray, *, gz: bool | None = None) -> Path:
    data = idx_bytes(array)
    gz = path.suffix == ".gz" if gz is None else gz
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_cifar_batch(path: Path, data: np.ndarray, labels, protocol: int = 2) -> Path:
    """A CIFAR-10 python batch as distributed: dict with bytes keys, uint8 data N×3072, list of labels."""
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    return path


def make_fake_cifar(folder: Path, n_per_batch: int = 4, n_test: int = 6, seed: int = 0, protocol: int = 2):
    """Write ``cifar-10-batches-py``-style files to ``folder``; returns the (train, test) arrays written."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, names, n in (
        ("train", [f"data_batch_{i}" for i in range(1, 6)], n_per_batch),
        ("test", ["test_batch"], n_test),
    ):
        datas, labs = [], []
        for name in names:
            data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, size=n)
            write_cifar_batch(folder / name, data, labels, protocol=protocol)
            datas.append(data)
            labs.append(labels)
        written[split] = (np.concatenate(datas).reshape(-1, 3, 32, 32), np.concatenate(labs))
    meta = {
        b"num_cases_per_batch": n_per_batch,
        b"label_names": [n.encode() for n in CIFAR_NAMES],
        b"num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return written


@pytest.fixture
def idx_writer():
    return write_idx


@pytest.fixture
def fake_cifar():
    return make_fake_cifar


@pytest.fixture
def cifar_batch_writer():
    return write_cifar_batch


@pytest.fixture
def cifar_names():
    return list(CIFAR_NAMES)


# ---------------------------------------------------------------------------------------------------------
# loopback HTTP server
# ---------------------------------------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        rng = self.headers.get("Range")
        server.requests.append((self.path, rng))
        root = server.root.resolve()
        file = (root / unquote(self.path.split("?")[0]).lstrip("/")).resolve()
        if root not in file.parents or not file.is_file():
            self.send_error(404, "Not Found")
            return
        data = file.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and server.range_support:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def http_server():
    """Factory: ``serve(directory, range_support=True) -> (base_url, server)``; ``server.requests`` logs
    ``(path, Range header)`` of every GET. Bound to 127.0.0.1 on a free port; shut down after the test."""
    servers = []

    def serve(directory: Path, range_support: bool = True):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.root = Path(directory)
        server.range_support = range_support
        server.requests = []
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}", server

    yield serve
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------------------
# the real CIFAR-10 JPEG archive, decoded once per session
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def cifar_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("freqlens-cache")


@pytest.fixture(scope="session")
def cifar_jpeg(shared_data, cifar_cache_dir):
    """``(archive path, train set, test set, seconds of the first load)``."""
    archive = shared_data / "cifar10" / "cifar10-jpeg.tar.gz"
    start = time.perf_counter()
    train = load_dataset(archive, "train", cache_dir=cifar_cache_dir, progress=False)
    first_load = time.perf_counter() - start
    test = load_dataset(archive, "test", cache_dir=cifar_cache_dir, progress=False)
    return archive, train, test, first_load
