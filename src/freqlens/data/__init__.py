"""freqlens.data: MNIST idx files, CIFAR-10 python batches, image folders (directory or tar), downloads and
the demo sample shipped in the package. Everything loads into an in-memory :class:`ImageDataset`
(uint8 ``N×C×H×W`` images, int64 labels, class names); user errors raise :class:`freqlens.errors.DataError`.
:func:`pick_indices` / :func:`pick_images` draw seeded random subsets.
"""

from freqlens.data.dataset import ImageDataset, mean_image, normalization_stats
from freqlens.data.download import MIRRORS, download_url
from freqlens.data.loader import DATASET_NAMES, default_data_root, load_dataset
from freqlens.data.sampling import pick_images, pick_indices

__all__ = ["DATASET_NAMES", "MIRRORS", "ImageDataset", "default_data_root", "download_url", "load_dataset",
           "mean_image", "normalization_stats", "pick_images", "pick_indices"]
