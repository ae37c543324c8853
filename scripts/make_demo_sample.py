#!/usr/bin/env python
"""Build the MNIST demo sample shipped in ``src/freqlens/data/demo/`` (deterministic, byte for byte).

From the MNIST idx files in SOURCE (default ``../shared/data/mnist``): the first 200 images of each digit
of the train file -> 2,000 train images, and the first 50 of each digit of the t10k file -> 500 test images,
kept in file order, written as idx ``.gz`` (level 9, mtime 0, no file name in the header).

    python scripts/make_demo_sample.py [--source DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from freqlens.data.download import MNIST_SPLIT_FILES
from freqlens.data.idx import IMAGES_MAGIC, LABELS_MAGIC, encode_idx, gzip_bytes, read_idx
from freqlens.utils import atomic_write_bytes

REPO = Path(__file__).resolve().parents[1]
PER_CLASS = {"train": 200, "test": 50}


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices (in file order) of the first ``per_class`` images of every class."""
    picked = [np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]
    short = [int(c) for c, p in zip(np.unique(labels), picked) if len(p) < per_class]
    if short:
        raise SystemExit(f"classes {short} have fewer than {per_class} images")
    return np.sort(np.concatenate(picked))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    parser.add_argument("--out", type=Path, default=REPO / "src" / "freqlens" / "data" / "demo")
    args = parser.parse_args()
    total = 0
    for split, per_class in PER_CLASS.items():
        images_name, labels_name = MNIST_SPLIT_FILES[split]
        images = read_idx(args.source / images_name, expected_magic=IMAGES_MAGIC)
        labels = read_idx(args.source / labels_name, expected_magic=LABELS_MAGIC)
        keep = first_per_class(labels, per_class)
        for name, array in ((images_name, images[keep]), (labels_name, labels[keep])):
            blob = gzip_bytes(encode_idx(array), level=9)
            atomic_write_bytes(args.out / name, blob)
            total += len(blob)
            print(f"{args.out / name}: {array.shape} {len(blob):,} bytes")
    print(f"total {total:,} bytes")


if __name__ == "__main__":
    main()
