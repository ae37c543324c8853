"""Image folders as directories and tar archives: pixels, classes, modes, cache, every error; and the real
CIFAR-10 JPEG archive of the shared data."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import freqlens.data.folder as folder_module
from freqlens.data import load_dataset
from freqlens.data.folder import archive_cache_paths
from freqlens.errors import DataError

SPEC = {"train": {"cat": 3, "dog": 2}, "test": {"cat": 1, "dog": 2, "eel": 1}}  # eel only in test


def make_tree(root: Path, spec=SPEC, size=(6, 5), mode="RGB", seed=0, ext=".png") -> dict:
    """Write random lossless images; returns {split: [(class, array)]} in (class, file name) order."""
    rng = np.random.default_rng(seed)
    height, width = size
    written = {}
    for split, classes in spec.items():
        written[split] = []
        for class_name in sorted(classes):
            folder = root / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(classes[class_name]):
                shape = (height, width) if mode == "L" else (height, width, 3)
                array = rng.integers(0, 256, size=shape, dtype=np.uint8)
                Image.fromarray(array, mode=mode).save(folder / f"img{i:02d}{ext}")
                written[split].append((class_name, array))
    return written


def make_tar(source: Path, out: Path, top: str | None = None) -> Path:
    mode = "w:gz" if out.name.endswith((".gz", ".tgz")) else "w"
    with tarfile.open(out, mode) as tar:
        for split in sorted(p.name for p in source.iterdir()):
            tar.add(source / split, arcname=f"{top}/{split}" if top else split)
    return out


def expected_tensors(records, classes):
    images = np.stack([a if a.ndim == 3 else a[..., None] for _, a in records]).transpose(0, 3, 1, 2)
    labels = [classes.index(c) for c, _ in records]
    return torch.from_numpy(np.ascontiguousarray(images)), labels


def test_directory_pixels_labels_and_class_union(tmp_path):
    written = make_tree(tmp_path / "ds")
    for split in ("train", "test"):
        dataset = load_dataset(tmp_path / "ds", split, progress=False)
        assert dataset.classes == ["cat", "dog", "eel"]  # union: train also knows "eel"
        images, labels = expected_tensors(written[split], dataset.classes)
        assert torch.equal(dataset.images, images) and dataset.labels.tolist() == labels
        assert dataset.images.shape[1:] == (3, 6, 5) and dataset.split == split and dataset.name == "ds"


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz"])
@pytest.mark.parametrize("top", [None, "wrapped"])
def test_archive_equals_directory(tmp_path, suffix, top):
    make_tree(tmp_path / "ds")
    archive = make_tar(tmp_path / "ds", tmp_path / f"pack{suffix}", top=top)
    cache = tmp_path / "cache"
    for split in ("train", "test"):
        from_dir = load_dataset(tmp_path / "ds", split, progress=False)
        from_tar = load_dataset(archive, split, cache_dir=cache, progress=False)
        assert torch.equal(from_tar.images, from_dir.images) and torch.equal(from_tar.labels, from_dir.labels)
        assert from_tar.classes == from_dir.classes and from_tar.name == "pack"
        assert archive_cache_paths(archive, split, cache)[1].is_file()  # one pass cached every split


def test_second_load_comes_from_cache(tmp_path, monkeypatch):
    make_tree(tmp_path / "ds")
    archive = make_tar(tmp_path / "ds", tmp_path / "pack.tar.gz")
    cache = tmp_path / "cache"
    first = {s: load_dataset(archive, s, cache_dir=cache, progress=False) for s in ("train", "test")}

    def no_decoding(*args, **kwargs):
        raise AssertionError("the archive was decoded again")

    monkeypatch.setattr(folder_module, "decode_archive", no_decoding)
    for split, dataset in first.items():
        again = load_dataset(archive, split, cache_dir=cache, progress=False)
        assert torch.equal(again.images, dataset.images) and again.classes == dataset.classes
    with pytest.raises(DataError, match="no split 'val'; available splits: test, train"):
        load_dataset(archive, "val", cache_dir=cache)  # answered from the cache index


def test_cache_follows_archive_changes_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FREQLENS_CACHE", str(tmp_path / "envcache"))
    make_tree(tmp_path / "a", seed=1)
    archive = make_tar(tmp_path / "a", tmp_path / "pack.tar")
    first = load_dataset(archive, "train", progress=False)
    assert archive_cache_paths(archive, "train")[1].parent == tmp_path / "envcache" / "datasets"
    assert archive_cache_paths(archive, "train")[1].is_file()
    make_tree(tmp_path / "b", seed=2)
    make_tar(tmp_path / "b", archive)
    os.utime(archive, ns=(time.time_ns(), time.time_ns() + 10**9))  # a distinct mtime, even on coarse clocks
    second = load_dataset(archive, "train", progress=False)
    assert not torch.equal(first.images, second.images)
    assert torch.equal(second.images, load_dataset(tmp_path / "b", "train", progress=False).images)


def test_damaged_cache_is_rebuilt(tmp_path):
    make_tree(tmp_path / "ds")
    archive = make_tar(tmp_path / "ds", tmp_path / "pack.tar")
    first = load_dataset(archive, "test", cache_dir=tmp_path / "c", progress=False)
    archive_cache_paths(archive, "test", tmp_path / "c")[1].write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable dataset cache"):
        again = load_dataset(archive, "test", cache_dir=tmp_path / "c", progress=False)
    assert torch.equal(again.images, first.images)


def test_grayscale_gives_one_channel(tmp_path):
    written = make_tree(tmp_path / "ds", mode="L")
    dataset = load_dataset(tmp_path / "ds", "train", progress=False)
    assert dataset.num_channels == 1
    assert torch.equal(dataset.images[:, 0], torch.from_numpy(np.stack([a for _, a in written["train"]])))


def _save(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def test_rgba_palette_and_mixed_modes_become_rgb(tmp_path):
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    rgba = rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)
    palette_index = rng.integers(0, 4, (4, 4), dtype=np.uint8)
    palette = [10, 20, 30, 200, 0, 0, 0, 255, 0, 7, 7, 7] + [0] * (256 * 3 - 12)
    paletted = Image.fromarray(palette_index, mode="P")
    paletted.putpalette(palette)
    _save(tmp_path / "ds/train/a/0.png", Image.fromarray(gray, mode="L"))
    _save(tmp_path / "ds/train/a/1.png", Image.fromarray(rgba, mode="RGBA"))
    _save(tmp_path / "ds/train/b/0.png", paletted)
    dataset = load_dataset(tmp_path / "ds", "train", progress=False)
    assert dataset.num_channels == 3
    images = dataset.images.numpy()
    assert all(np.array_equal(images[0, c], gray) for c in range(3))  # gray replicated on 3 channels
    assert np.array_equal(images[1], rgba[..., :3].transpose(2, 0, 1))  # alpha dropped
    lookup = np.array(palette, dtype=np.uint8).reshape(256, 3)
    assert np.array_equal(images[2], lookup[palette_index].transpose(2, 0, 1))


def test_jpeg_and_bmp_extensions(tmp_path):
    written = make_tree(tmp_path / "ds", spec={"train": {"x": 2}}, ext=".bmp")
    _save(tmp_path / "ds/train/y/0.JPG", Image.fromarray(written["train"][0][1]))
    (tmp_path / "ds/train/y/notes.txt").write_text("ignored")
    dataset = load_dataset(tmp_path / "ds", "train", progress=False)
    assert len(dataset) == 3 and dataset.class_counts().tolist() == [2, 1]
    assert torch.equal(dataset.images[0], torch.from_numpy(written["train"][0][1]).permute(2, 0, 1))


# ---------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------
def _one_line(info) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_split_lists_available(tmp_path):
    make_tree(tmp_path / "ds")
    with pytest.raises(DataError, match="no split 'valid'; available splits: test, train") as info:
        load_dataset(tmp_path / "ds", "valid")
    _one_line(info)
    archive = make_tar(tmp_path / "ds", tmp_path / "pack.tar.gz")
    with pytest.raises(DataError, match="no split 'valid'; available splits: test, train"):
        load_dataset(archive, "valid", cache_dir=tmp_path / "cache", progress=False)


def test_corrupt_image_in_directory_names_file(tmp_path):
    make_tree(tmp_path / "ds")
    bad = tmp_path / "ds/train/dog/img01.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match="img01.png: corrupt or unreadable image") as info:
        load_dataset(tmp_path / "ds", "train", progress=False)
    assert str(bad) in _one_line(info)


def test_corrupt_image_in_archive_names_member(tmp_path):
    make_tree(tmp_path / "ds")
    (tmp_path / "ds/test/eel/img00.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    archive = make_tar(tmp_path / "ds", tmp_path / "pack.tgz")
    with pytest.raises(DataError, match=r"pack.tgz:test/eel/img00.png: corrupt"):
        load_dataset(archive, "train", cache_dir=tmp_path / "cache", progress=False)


def test_mixed_sizes_name_a_file(tmp_path):
    make_tree(tmp_path / "ds", spec={"train": {"a": 2}})
    _save(tmp_path / "ds/train/b/odd.png", Image.new("RGB", (9, 9)))
    with pytest.raises(DataError, match=r"odd.png is 9×9 but .*img00.png is 6×5") as info:
        load_dataset(tmp_path / "ds", "train", progress=False)
    _one_line(info)


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.9, -4])
def test_truncated_tar_gz(tmp_path, keep):
    make_tree(tmp_path / "ds", size=(16, 16))
    archive = make_tar(tmp_path / "ds", tmp_path / "pack.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:keep])  # -4: only the gzip size
    with pytest.raises(DataError, match="pack.tar.gz: .*(truncated|corrupt)") as info:
        load_dataset(archive, "train", cache_dir=tmp_path / "cache", progress=False)
    _one_line(info)
    assert not list((tmp_path / "cache").glob("**/*.pt"))  # nothing cached from a broken archive


def test_plain_tar_cut_at_a_member_boundary(tmp_path):
    make_tree(tmp_path / "ds")
    archive = make_tar(tmp_path / "ds", tmp_path / "pack.tar")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
    boundary = members[-2].offset_data + -(-members[-2].size // 512) * 512  # end of a member, block aligned
    archive.write_bytes(archive.read_bytes()[:boundary])
    with tarfile.open(archive) as tar:  # the standard library itself does not notice
        assert len([m for m in tar.getmembers() if m.isfile()]) == len(members) - 1
    with pytest.raises(DataError, match="truncated archive"):
        load_dataset(archive, "train", cache_dir=tmp_path / "cache", progress=False)


def test_not_an_archive(tmp_path):
    fake = tmp_path / "fake.tar.gz"
    fake.write_bytes(b"\x1f\x8b\x08\x00 this is not a tarball")
    with pytest.raises(DataError, match="fake.tar.gz: corrupt or truncated archive"):
        load_dataset(fake, "train", cache_dir=tmp_path / "cache")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DataError, match="not an image folder"):
        load_dataset(text, "train")


def test_bad_archive_layout(tmp_path):
    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, format="PNG")
    archive = tmp_path / "deep.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("a/b/train/cat/0.png", "a/c/train/dog/0.png"):
            info = tarfile.TarInfo(name)
            info.size = len(buffer.getvalue())
            tar.addfile(info, io.BytesIO(buffer.getvalue()))
    with pytest.raises(DataError, match="unexpected archive layout"):
        load_dataset(archive, "train", cache_dir=tmp_path / "cache")


def test_split_without_images(tmp_path):
    (tmp_path / "ds/train/cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load_dataset(tmp_path / "ds", "train")


# ---------------------------------------------------------------------------------------------------------
# the real CIFAR-10 JPEG archive (shared data)
# ---------------------------------------------------------------------------------------------------------
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_cifar_jpeg_archive(cifar_jpeg):
    archive, train, test, first_load = cifar_jpeg
    print(f"first load (decode 60,000 JPEGs + cache) {first_load:.1f} s")
    assert len(train) == 50_000 and len(test) == 10_000
    assert train.images.shape[1:] == (3, 32, 32) and test.images.shape[1:] == (3, 32, 32)
    assert train.classes == CIFAR_CLASSES and test.classes == CIFAR_CLASSES
    assert train.class_counts().tolist() == [5_000] * 10 and test.class_counts().tolist() == [1_000] * 10
    # a few images against a direct decode of their members (sorted by class, then file name)
    wanted = {
        "test/airplane/0000.jpg": (test, 0),
        "test/truck/0999.jpg": (test, 9_999),
        "test/cat/0003.jpg": (test, 3_003),
    }
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            if member.name in wanted:
                dataset, index = wanted.pop(member.name)
                array = np.array(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
                assert torch.equal(dataset.images[index], torch.from_numpy(array).permute(2, 0, 1))
    assert not wanted


def test_cifar_jpeg_second_load_from_cache(cifar_jpeg, cifar_cache_dir, monkeypatch):
    archive, train, _, _ = cifar_jpeg
    for split in ("train", "test"):
        assert archive_cache_paths(archive, split, cifar_cache_dir)[1].is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("the archive was decoded again")

    monkeypatch.setattr(folder_module, "decode_archive", no_decoding)
    start = time.perf_counter()
    again = load_dataset(archive, "train", cache_dir=cifar_cache_dir, progress=False)
    print(f"cached load of 50,000 images {time.perf_counter() - start:.2f} s")
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)
