"""Seeds of random streams: one hash for per-unit streams, one draw from a generator."""

from __future__ import annotations

import torch

from freqlens import distributed
from freqlens.training.seeding import epoch_seed
from freqlens.utils.seeding import seed_from, stream_seed


def test_stream_seeds_are_functions_of_their_parts_only_and_63_bit():
    seeds = {stream_seed("freqlens.train", seed, epoch, "shuffle") for seed in range(3) for epoch in range(1, 40)}
    assert len(seeds) == 3 * 39 and all(0 <= s < 2**63 for s in seeds)
    assert stream_seed("a", 1) == stream_seed("a", 1) != stream_seed("a", 2)
    assert stream_seed("a", 1) == stream_seed("a/1")  # parts are joined by "/" before hashing


def test_training_and_the_commands_share_the_one_hash():
    assert distributed.stream_seed is stream_seed
    assert epoch_seed(7, 3, "shuffle") == stream_seed("freqlens.train", 7, 3, "shuffle")


def test_seed_from_draws_once_from_the_generator():
    first, second = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert seed_from(first) == seed_from(second)
    assert seed_from(first) != seed_from(torch.Generator().manual_seed(5))  # the generator advanced
    assert 0 <= seed_from(None) < 2**62
