"""Data benchmark: first load (decode + cache) and cached load of the 60,000-image CIFAR-10 JPEG
archive, and the MNIST idx files. Goal (issue 2): the archive loads in well under a minute.

Reads ``../shared/data`` (or ``$FREQLENS_SHARED_DATA``); writes ``benchmarks/results/data.json``.
"""

from __future__ import annotations

import sys
import tempfile
import time

from _common import SHARED_DATA, write_result

from freqlens.data import load_dataset


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> int:
    archive = SHARED_DATA / "cifar10" / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        print(f"shared data not found at {SHARED_DATA}; set FREQLENS_SHARED_DATA", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as cache:
        train, first = timed(lambda: load_dataset(archive, "train", cache_dir=cache, progress=False))
        test, cached_test = timed(lambda: load_dataset(archive, "test", cache_dir=cache, progress=False))
        _, cached_train = timed(lambda: load_dataset(archive, "train", cache_dir=cache, progress=False))
    mnist, mnist_seconds = timed(lambda: load_dataset("mnist", "test", root=SHARED_DATA / "mnist"))
    results = {
        "cifar10_jpeg_first_load_seconds": first,
        "cifar10_jpeg_cached_train_seconds": cached_train,
        "cifar10_jpeg_cached_test_seconds": cached_test,
        "cifar10_images": len(train) + len(test),
        "mnist_test_load_seconds": mnist_seconds,
        "mnist_images": len(mnist),
        "goal_first_load_seconds": 60,
    }
    print(f"CIFAR-10 archive: first load {first:.1f} s (goal < 60 s), cached {cached_train:.2f} s; "
          f"MNIST test {mnist_seconds:.2f} s")
    write_result("data", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
