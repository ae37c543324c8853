"""Seeds of random streams, one definition each (bottom floor: torch and the standard library only).

* :func:`stream_seed`: a 63-bit seed that is a function of a tuple of parts only (a hash): one random stream
  per work unit, per epoch or per purpose, whatever process computes it (training epochs, the commands'
  work units under ``torchrun``).
* :func:`seed_from`: a 63-bit seed drawn from a ``torch.Generator`` (for APIs that take an int seed, such
  as :class:`torch.quasirandom.SobolEngine`).
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["seed_from", "stream_seed"]


def stream_seed(*parts: object) -> int:
    """A 63-bit seed that is a function of ``parts`` only.

    Args:
        *parts: what names the stream, e.g. ``("freqlens.evaluate", seed, "unit", 3)``; joined by ``/`` as
            text and hashed (BLAKE2b, 8 bytes).

    Returns:
        The seed, in ``[0, 2⁶³)``.
    """
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def seed_from(generator: torch.Generator | None) -> int:
    """A seed in ``[0, 2⁶²)`` drawn from ``generator`` (from torch's global CPU RNG when ``None``).

    Args:
        generator: the stream to draw from, on any device.

    Returns:
        The seed (the generator advances by one draw).
    """
    device = "cpu" if generator is None else generator.device
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=device).item())
