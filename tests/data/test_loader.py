"""load_dataset: name resolution, splits, one-line DataErrors, public re-exports."""

from __future__ import annotations

import pytest

from freqlens import data
from freqlens.data import DATASET_NAMES, load_dataset
from freqlens.errors import DataError, FreqlensError


def test_public_api():
    for name in ("load_dataset", "ImageDataset", "download_url", "DATASET_NAMES"):
        assert name in data.__all__ and hasattr(data, name)
    assert set(DATASET_NAMES) == {"mnist", "cifar10", "demo", "demo-mnist", "demo-cifar10"}


def test_unknown_name_lists_valid_names():
    with pytest.raises(DataError) as info:
        load_dataset("imagenet-21k")
    message = str(info.value)
    assert "imagenet-21k" in message and "\n" not in message
    assert all(name in message for name in DATASET_NAMES)
    assert isinstance(info.value, FreqlensError)


def test_missing_path_is_reported_as_a_path(tmp_path):
    with pytest.raises(DataError, match="missing.tar.gz: no such file or folder"):
        load_dataset(str(tmp_path / "missing.tar.gz"))


@pytest.mark.parametrize("name", ["demo", "mnist", "cifar10"])
def test_unknown_split_for_named_datasets(name):
    with pytest.raises(DataError, match="unknown split 'validation'.*train, test"):
        load_dataset(name, "validation")


def test_names_are_case_insensitive():
    assert len(load_dataset(" Demo ", "test")) == 1000 and len(load_dataset("DEMO-mnist", "test")) == 500


def test_relative_path_under_root(tmp_path):
    from PIL import Image

    (tmp_path / "imgs/train/a").mkdir(parents=True)
    Image.new("L", (3, 3), color=9).save(tmp_path / "imgs/train/a/0.png")
    dataset = load_dataset("imgs", "train", root=tmp_path, progress=False)
    assert len(dataset) == 1 and int(dataset.images.max()) == 9
