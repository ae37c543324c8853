"""Fixtures of the training tests: small slices of the demo sample, single-threaded torch."""

from __future__ import annotations

import pytest
import torch

from freqlens.data import load_dataset


@pytest.fixture(scope="session")
def demo_train():
    """400 training digits of the embedded demo sample (every 5th: 40 per class; the sample is sorted)."""
    return load_dataset("demo-mnist", "train").subset(range(0, 2000, 5))


@pytest.fixture(scope="session")
def demo_val():
    """200 test digits of the demo sample."""
    return load_dataset("demo-mnist", "test").subset(range(200))


@pytest.fixture(autouse=True)
def single_thread():
    """One torch thread in every training test (float sums in a fixed order, as in the killed
    subprocess of the resume test; also faster for these tiny models on a shared CPU); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
