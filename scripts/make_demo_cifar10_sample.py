#!/usr/bin/env python
"""Build the CIFAR-10 sample shipped in ``src/freqlens/data/demo_cifar10/`` (deterministic, byte for byte).

From the test split of the CIFAR-10 JPEG archive SOURCE (default
``../shared/data/cifar10/cifar10-jpeg.tar.gz``, read with ``freqlens.data.load_dataset``): 100 images of
each class drawn without replacement with ``numpy.random.default_rng(SEED)`` (classes in label order),
kept in archive order -> 1,000 uint8 images, plus ``train_mean_image`` (float32 3×32×32, the mean image
x̄ of the 50,000 training images, which seed 000's VII needs and the sample cannot give), written as ``cifar10-test-sample.npz`` (deflate level 9,
fixed member timestamps, so the same input gives the same bytes; ``np.savez_compressed`` stamps the
current time).

    python scripts/make_demo_cifar10_sample.py [--source ARCHIVE] [--out DIR] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from freqlens.data import load_dataset, mean_image
from freqlens.data.samples import DEMO_CIFAR10_FILE
from freqlens.utils import atomic_write_bytes

REPO = Path(__file__).resolve().parents[1]
SEED = 13
PER_CLASS = 100
_EPOCH = (1980, 1, 1, 0, 0, 0)  # earliest zip timestamp: the members carry no build time


def draw_per_class(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` images of every class, drawn without replacement from ``seed``."""
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(labels):
        pool = np.flatnonzero(labels == label)
        if len(pool) < per_class:
            raise SystemExit(f"class {int(label)} has {len(pool)} images, fewer than {per_class}")
        picked.append(rng.choice(pool, size=per_class, replace=False))
    return np.sort(np.concatenate(picked))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A ``.npz`` archive of ``arrays`` (deflate level 9) whose bytes depend only on the arrays."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def sample_arrays(source: Path, cache_dir: Path | None) -> dict[str, np.ndarray]:
    """The arrays of the sample drawn from the test split of the archive ``source``."""
    test = load_dataset(source, split="test", cache_dir=cache_dir, progress=False)
    train = load_dataset(source, split="train", cache_dir=cache_dir, progress=False)
    labels = test.labels.numpy()
    keep = draw_per_class(labels, PER_CLASS, SEED)
    return {
        "images": np.ascontiguousarray(test.images.numpy()[keep], dtype=np.uint8),
        "labels": labels[keep].astype(np.int64),
        "classes": np.array(test.classes, dtype=str),
        "source_indices": keep.astype(np.int64),
        "seed": np.array(SEED, dtype=np.int64),
        "train_mean_image": mean_image(train.images).numpy().astype(np.float32),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path,
                        default=REPO.parent / "shared" / "data" / "cifar10" / "cifar10-jpeg.tar.gz")
    parser.add_argument("--out", type=Path, default=REPO / "src" / "freqlens" / "data" / "demo_cifar10")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="decoded-archive cache (default $FREQLENS_CACHE or ~/.cache/freqlens)")
    args = parser.parse_args()
    arrays = sample_arrays(args.source, args.cache_dir)
    blob = npz_bytes(arrays)
    atomic_write_bytes(args.out / DEMO_CIFAR10_FILE, blob)
    counts = np.bincount(arrays["labels"], minlength=len(arrays["classes"])).tolist()
    print(f"{args.out / DEMO_CIFAR10_FILE}: images {arrays['images'].shape} per class {counts}, "
          f"seed {SEED}, {len(blob):,} bytes")


if __name__ == "__main__":
    main()
