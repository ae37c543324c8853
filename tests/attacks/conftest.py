"""Fixtures: a small CNN trained for a few seconds on the demo digits, and a handful of test digits."""

from __future__ import annotations

import pytest
import torch

from freqlens.data import load_dataset
from freqlens.models import build
from freqlens.training import train


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine OpenMP barriers make
    small ops ~100× slower; run these tests on one thread (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mnist_cnn() -> torch.nn.Module:
    """LeNet trained 6 epochs on the 2,000 demo training digits (a few seconds), left in train mode."""
    data = load_dataset("demo-mnist", "train").subset(range(2000))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build("lenet", in_channels=1, num_classes=10)
    try:
        train(model, data, epochs=6, batch_size=32, lr=3e-3, progress=False, seed=0)
    finally:
        torch.set_num_threads(threads)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


@pytest.fixture(scope="session")
def digits(mnist_cnn) -> tuple[torch.Tensor, torch.Tensor]:
    """32 test digits that the trained CNN classifies correctly, and their labels."""
    test = load_dataset("demo-mnist", "test")
    images, labels = test.float_images(range(64)), test.labels[:64]
    with torch.no_grad():
        correct = mnist_cnn.eval()(images).argmax(1) == labels
    mnist_cnn.train()
    keep = correct.nonzero().squeeze(1)[:32]
    return images[keep], labels[keep]


def make_attack(name: str, model: torch.nn.Module, generator: torch.Generator | None = None, **overrides):
    """Each attack with small, fast settings (``name`` in :data:`ATTACK_NAMES`)."""
    from freqlens.attacks import CW, FGSM, PGD, LowFrequencyPGD, SimBA

    factories = {
        "fgsm": lambda: FGSM(model, eps=0.2),
        "pgd": lambda: PGD(model, eps=0.2, alpha=0.05, steps=5, generator=generator),
        "pgd-l2": lambda: PGD(model, eps=1.5, alpha=0.5, steps=5, norm="2", generator=generator),
        "cw": lambda: CW(model, c=1.0, steps=30, lr=0.05),
        "simba": lambda: SimBA(model, eps=0.2, max_queries=60, generator=generator),
        "simba-dct": lambda: SimBA(model, eps=0.2, max_queries=60, basis="dct", order="diagonal", generator=generator),
        "lfpgd": lambda: LowFrequencyPGD(model, eps=0.2, alpha=0.05, steps=5, cutoff=6, generator=generator),
    }
    attack = factories[name]()
    for key, value in overrides.items():
        setattr(attack, key, value)
    return attack


ATTACK_NAMES = ("fgsm", "pgd", "pgd-l2", "cw", "simba", "simba-dct", "lfpgd")
