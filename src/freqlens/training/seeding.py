"""The random streams of a training run.

Every random draw of epoch ``e`` (shuffling, augmentation, the mode's noise, torch's global RNG for
dropout) comes from a generator seeded from ``(seed, e, stream)`` alone, so an epoch does not depend on
what ran before it and a resumed run draws what an uninterrupted one would. The seeds are
:func:`freqlens.utils.seeding.stream_seed` of ``("freqlens.train", seed, epoch, stream)``: one hash for every
per-unit random stream of freqlens (the commands seed their work units with it too).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from freqlens.utils.seeding import stream_seed

__all__ = ["epoch_generator", "epoch_seed", "seeded_global_rng"]


def epoch_seed(seed: int, epoch: int, stream: str) -> int:
    """The seed of one random stream of one epoch.

    Args:
        seed: The run's seed.
        epoch: The epoch (1-based).
        stream: The stream's name (``"shuffle"``, ``"augment/rank1"``, ...).

    Returns:
        A 63-bit seed, a function of ``(seed, epoch, stream)`` only.
    """
    return stream_seed("freqlens.train", seed, epoch, stream)


def epoch_generator(seed: int, epoch: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with :func:`epoch_seed` of ``(seed, epoch, stream)``.

    Args:
        seed: The run's seed.
        epoch: The epoch (1-based).
        stream: The stream's name.
        device: Where the generator draws.

    Returns:
        The seeded generator.
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(epoch_seed(seed, epoch, stream))
    return generator


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's global RNG (used by dropout) seeded with ``seed`` inside; the caller's state restored after.

    Args:
        seed: The seed of the global RNG inside the block (and of ``device``'s, for a CUDA device).
        device: The device whose RNG is forked too when it is a CUDA device.

    Yields:
        Nothing; the block runs with the seeded RNG.
    """
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield
