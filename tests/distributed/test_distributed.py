"""freqlens.distributed in one process: the helpers are exact no-ops, settings are checked; the
multi-process behaviour is tested through torchrun in the other modules of this folder."""

from __future__ import annotations

import pytest
import torch

from freqlens import distributed
from freqlens.distributed import DistributedError
from freqlens.errors import FreqlensError


@pytest.fixture(autouse=True)
def _single_process_env(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", distributed.TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)


def test_single_process_helpers_are_identities():
    assert not distributed.launched() and not distributed.active()
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    assert distributed.is_main()
    assert distributed.init() is False and not torch.distributed.is_initialized()
    items = list("abcdefg")
    assert distributed.shard(items) == items
    assert distributed.gather_ordered([(2, "c"), (0, "a"), (1, "b")]) == ["a", "b", "c"]
    tensor = torch.arange(3.0)
    assert distributed.all_reduce_sum(tensor) is tensor and tensor.tolist() == [0.0, 1.0, 2.0]
    assert distributed.broadcast_object({"x": 1}) == {"x": 1}
    assert distributed.run_everywhere(lambda: 42) == 42
    with distributed.session() as running:
        assert running is False


def test_gather_ordered_rejects_duplicate_keys():
    with pytest.raises(DistributedError, match="same key"):
        distributed.gather_ordered([(0, "a"), (0, "b")])


def test_run_everywhere_lets_the_error_through_in_one_process():
    def fail():
        raise FreqlensError("bad input")

    with pytest.raises(FreqlensError, match="bad input"):
        distributed.run_everywhere(fail)


@pytest.mark.parametrize("count, size", [(32, 8), (10, 4), (3, 8), (1, 1), (0, 5)])
def test_work_units_cover_the_items_once_in_order(count, size):
    units = distributed.work_units(count, size)
    assert [i for unit in units for i in unit] == list(range(count))
    assert all(len(unit) == size for unit in units[:-1]) and all(0 < len(unit) <= size for unit in units)
    assert len(units) == -(-count // size)


def test_work_units_size_must_be_positive():
    with pytest.raises(ValueError, match=">= 1"):
        distributed.work_units(4, 0)


def test_stream_seed_depends_on_every_part_only():
    seed = distributed.stream_seed("freqlens.evaluate", 0, "unit", 3)
    assert seed == distributed.stream_seed("freqlens.evaluate", 0, "unit", 3)
    others = {distributed.stream_seed("freqlens.evaluate", s, "unit", u) for s in (0, 1) for u in range(50)}
    assert len(others) == 100 and 0 <= seed < 2**63


def test_timeout_from_argument_environment_or_default(monkeypatch):
    assert distributed.timeout_seconds() == distributed.DEFAULT_TIMEOUT
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "12.5")
    assert distributed.timeout_seconds() == 12.5
    assert distributed.timeout_seconds(3) == 3.0


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf", "nan"])
def test_bad_timeout_is_a_user_error(monkeypatch, value):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, value)
    with pytest.raises(DistributedError, match=distributed.TIMEOUT_ENV if value == "soon" else "positive"):
        distributed.timeout_seconds()


def test_world_size_without_torchrun_variables_is_a_user_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.launched()
    with pytest.raises(DistributedError, match="RANK, MASTER_ADDR, MASTER_PORT not: start freqlens with torchrun"):
        distributed.init()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DistributedError, match="not an integer"):
        distributed.launched()


def test_local_device_maps_bare_cuda_to_the_local_rank(monkeypatch):
    assert distributed.local_device("cpu") == torch.device("cpu")
    assert distributed.local_device("cuda") == torch.device("cuda")  # single process: unchanged
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.local_device("cuda") == torch.device("cuda", 3)
    assert distributed.local_device("cuda:1") == torch.device("cuda", 1)
