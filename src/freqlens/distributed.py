"""Running freqlens on several processes with ``torchrun`` (one process per GPU or per CPU slot).

Distributed mode is detected from the environment variables that ``torchrun`` sets (``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); without them, or with ``WORLD_SIZE=1``,
everything runs in one process exactly as before. :func:`session` joins the process group (backend
``nccl`` when the device is CUDA, else ``gloo``, chosen automatically) with a timeout of
``FREQLENS_DIST_TIMEOUT`` seconds (default :data:`DEFAULT_TIMEOUT`) and leaves it cleanly.

The helpers are no-ops in a single process, so the commands call them unconditionally:

- :func:`rank`, :func:`world_size`, :func:`local_rank`, :func:`is_main`, :func:`active`;
- :func:`shard` (this rank's part of a list of work items, round-robin) and :func:`gather_ordered`
  (every rank's ``(key, value)`` results, merged in key order on every rank), so that results come
  back in the original order whatever the number of processes;
- :func:`all_reduce_sum`, :func:`barrier`, :func:`broadcast_object`;
- :func:`run_everywhere`: a step that may fail with a user error on some ranks only; the error is
  shared so that every rank stops with the same message instead of waiting for the others.

A rank that dies makes the collective operations of the others fail (connection lost) or time out
after ``FREQLENS_DIST_TIMEOUT`` seconds; they then exit with a :class:`DistributedError` message, and
``torchrun`` stops the whole job with a non-zero status.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

from freqlens.errors import FreqlensError
from freqlens.utils.seeding import stream_seed  # re-exported: the commands seed their work units with it

T = TypeVar("T")

#: seconds a collective operation waits for the other ranks before failing
DEFAULT_TIMEOUT = 300.0
TIMEOUT_ENV = "FREQLENS_DIST_TIMEOUT"

__all__ = [
    "DEFAULT_TIMEOUT",
    "TIMEOUT_ENV",
    "DistributedError",
    "active",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "gather_ordered",
    "init",
    "is_main",
    "launched",
    "local_device",
    "local_rank",
    "rank",
    "run_everywhere",
    "session",
    "shard",
    "shutdown",
    "stream_seed",
    "timeout_seconds",
    "work_units",
    "world_size",
]


class DistributedError(FreqlensError):
    """The process group could not be joined, or another rank failed, died or timed out."""


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"environment variable {name}={text!r} is not an integer") from None


def launched() -> bool:
    """``True`` when started by ``torchrun`` (or alike) with ``WORLD_SIZE`` > 1."""
    return _env_int("WORLD_SIZE", 1) > 1


def active() -> bool:
    """``True`` when a process group with more than one rank is initialised."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 in a single process)."""
    return torch.distributed.get_rank() if active() else 0


def world_size() -> int:
    """Number of processes (1 in a single process)."""
    return torch.distributed.get_world_size() if active() else 1


def local_rank() -> int:
    """Rank on this machine (``LOCAL_RANK``; 0 in a single process)."""
    return _env_int("LOCAL_RANK", 0) if active() or launched() else 0


def is_main() -> bool:
    """``True`` on rank 0 (the process that writes files and shows progress bars)."""
    return rank() == 0


def timeout_seconds(timeout: float | None = None) -> float:
    """``timeout``, else ``FREQLENS_DIST_TIMEOUT``, else :data:`DEFAULT_TIMEOUT` (seconds, > 0)."""
    if timeout is None:
        text = os.environ.get(TIMEOUT_ENV, "").strip()
        try:
            timeout = float(text) if text else DEFAULT_TIMEOUT
        except ValueError:
            raise DistributedError(f"{TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    if not (timeout > 0 and math.isfinite(timeout)):
        raise DistributedError(f"the distributed timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def local_device(device: torch.device | str) -> torch.device:
    """``device`` for this rank: a bare ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and (active() or launched()):
        return torch.device("cuda", local_rank())
    return device


def init(device: torch.device | str = "cpu", timeout: float | None = None) -> bool:
    """Join the process group described by the ``torchrun`` environment.

    Args:
        device: this process's device (a bare ``cuda`` becomes ``cuda:LOCAL_RANK``, :func:`local_device`).
            Backend: ``nccl`` for a CUDA ``device``, else ``gloo``.
        timeout: seconds a collective operation may wait (``None``: :func:`timeout_seconds`).

    Returns:
        ``True`` when it joined; ``False`` (and nothing done) in a single process or when already joined.

    Raises:
        DistributedError: no ``torch.distributed``, an incomplete ``torchrun`` environment, a bad
            timeout, or the group could not be joined.
    """
    dist = torch.distributed
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed; run freqlens in one process")
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise DistributedError(f"WORLD_SIZE is set but {', '.join(missing)} not: start freqlens with torchrun")
    device = local_device(device)
    backend = "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    seconds = timeout_seconds(timeout)
    try:
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=seconds))
    except (RuntimeError, ValueError) as error:  # pragma: no cover - depends on the network
        raise DistributedError(f"could not join the process group ({backend}): {_first_line(error)}") from None
    return True


def shutdown() -> None:
    """Leave the process group (no-op when none is initialised)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def session(device: torch.device | str = "cpu", timeout: float | None = None) -> Iterator[bool]:
    """Context manager: :func:`init` on entry, :func:`shutdown` on exit; yields whether it runs distributed.

    A failed collective operation inside (a rank died, or the timeout passed) becomes a
    :class:`DistributedError` naming this rank, so the command exits with one readable line.

    Args:
        device: this process's device (as :func:`init`).
        timeout: seconds a collective operation may wait (``None``: :func:`timeout_seconds`).

    Yields:
        Whether it runs distributed (more than one process in a group).

    Raises:
        DistributedError: the group could not be joined, or a collective operation failed inside.
    """
    joined = init(device, timeout)
    try:
        yield active()
    except FreqlensError:
        raise
    except RuntimeError as error:
        if not joined or not _is_collective_failure(error):
            raise
        raise DistributedError(
            f"rank {rank()}/{world_size()}: lost the other processes (a rank failed, died, or did not answer "
            f"within {timeout_seconds(timeout):g} s; set {TIMEOUT_ENV}): {_first_line(error)}"
        ) from None
    finally:
        if joined:
            with contextlib.suppress(Exception):  # a broken group cannot always be destroyed cleanly
                shutdown()


def _is_collective_failure(error: RuntimeError) -> bool:
    backend_error = getattr(torch.distributed, "DistBackendError", None)
    if backend_error is not None and isinstance(error, backend_error):
        return True
    text = str(error).lower()
    return any(word in text for word in ("gloo", "nccl", "timed out", "timeout", "connection", "peer", "socket"))


# ------------------------------------------------------------------------------------------ work units
def work_units(count: int, size: int) -> list[range]:
    """``range(count)`` cut into consecutive units: the pieces of work shared among the ranks.

    Args:
        count: the number of items.
        size: items per unit (≥ 1); the units are fixed by ``size`` alone, so results do not depend on
            the process count.

    Returns:
        The units, consecutive ranges of ``size`` items (the last one shorter).

    Raises:
        ValueError: ``size < 1``.
    """
    if size < 1:
        raise ValueError(f"the unit size must be >= 1, got {size}")
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


# ------------------------------------------------------------------------------------------ collectives
def shard(items: Sequence[T]) -> list[T]:
    """This rank's items: ``items[rank::world_size]`` (round-robin, so ranks get equal shares ±1)."""
    return list(items[rank()::world_size()])


def gather_ordered(pairs: Sequence[tuple[int, T]]) -> list[T]:
    """Merge every rank's ``(key, value)`` pairs; the values sorted by key, on every rank.

    In a single process this is just the values of ``pairs`` sorted by key. Values travel with
    :func:`torch.distributed.all_gather_object` (pickled; move tensors to the CPU first).
    """
    gathered: list[list[tuple[int, T]]] = [list(pairs)]
    if active():
        gathered = [[] for _ in range(world_size())]
        torch.distributed.all_gather_object(gathered, list(pairs))
    merged = [pair for part in gathered for pair in part]
    keys = [key for key, _ in merged]
    if len(set(keys)) != len(keys):
        raise DistributedError("gather_ordered: two ranks returned the same key")  # internal invariant
    return [value for _, value in sorted(merged, key=lambda pair: pair[0])]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over the ranks (in place, also returned); unchanged in a single process."""
    if active():
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if active():
        torch.distributed.barrier()


def broadcast_object(value: T, source: int = 0) -> T:
    """``value`` of rank ``source`` on every rank (pickled).

    Args:
        value: the object to share (only the one of rank ``source`` matters).
        source: the rank whose value is sent.

    Returns:
        Rank ``source``'s ``value`` (in a single process, ``value`` itself).
    """
    if not active():
        return value
    holder = [value]
    torch.distributed.broadcast_object_list(holder, src=source)
    return holder[0]


def run_everywhere(step: Callable[[], T], catch: tuple[type[BaseException], ...] = (FreqlensError,)) -> T:
    """Run ``step()`` on every rank, failing on all of them when it fails on one.

    Args:
        step: the work, called without arguments.
        catch: the exceptions shared among the ranks.

    Returns:
        What ``step()`` returned on this rank.

    Raises:
        FreqlensError: when ``step()`` raises one of ``catch`` on any rank, every rank raises it with the
            first failing rank's message (instead of the others waiting for it until the timeout). In a
            single process, ``step()`` as is (its exception unchanged).
    """
    if not active():
        return step()
    result: Any = None
    failure: str | None = None
    try:
        result = step()
    except catch as error:
        failure = str(error) if isinstance(error, FreqlensError) else f"{type(error).__name__}: {error}"
    failures: list[str | None] = [None] * world_size()
    torch.distributed.all_gather_object(failures, failure)
    for index, message in enumerate(failures):
        if message is not None:
            raise FreqlensError(message if index == rank() else f"rank {index}: {message}")
    return result
