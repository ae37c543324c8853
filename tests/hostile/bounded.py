"""Helpers of the hostile-file tests: run a reader under a time and memory budget, and damage bytes.

:func:`outcome` runs a reader and returns what it returned or the :class:`~freqlens.errors.FreqlensError`
it raised; anything else fails the test: another exception (it propagates), a hang (an alarm interrupts
the reader), or a peak of Python allocations above the budget (``tracemalloc``: bytes, numpy arrays)
or a growth of the process's peak resident memory above the budget (``getrusage``: torch tensors too).
"""

from __future__ import annotations

import resource
import signal
import tracemalloc
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from freqlens.errors import FreqlensError

#: Python allocations allowed while reading a file of a few KB.
PYTHON_BUDGET = 64 * 2**20
#: Growth of the peak resident memory allowed while reading a file of a few KB.
RSS_BUDGET = 256 * 2**20
#: Seconds after which a reader counts as hung.
HANG_SECONDS = 30


class ReaderHung(AssertionError):
    """The reader ran longer than :data:`HANG_SECONDS`."""


def _alarm(_signum: int, _frame: Any) -> None:
    raise ReaderHung(f"the reader ran for more than {HANG_SECONDS} s")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def outcome(read: Callable[[], Any], *, budget: int = PYTHON_BUDGET) -> Any:
    """Run ``read()`` under the budgets.

    Args:
        read: The reader, without arguments.
        budget: Python allocations allowed (bytes).

    Returns:
        What ``read`` returned, or the :class:`FreqlensError` it raised.

    Raises:
        AssertionError: ``read`` hung or exceeded a memory budget.
        Exception: Whatever else ``read`` raised (a test failure: not the library's own error type).
    """
    rss_before = _peak_rss()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    tracemalloc.start()
    try:
        result = read()
    except FreqlensError as error:
        result = error
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert peak < budget, f"the reader allocated {peak / 2**20:.1f} MiB of Python objects"
    growth = _peak_rss() - rss_before
    assert growth < RSS_BUDGET, f"the reader grew the peak resident memory by {growth / 2**20:.1f} MiB"
    return result


@st.composite
def damaged(draw: st.DrawFn, original: bytes, max_flips: int = 4) -> bytes:
    """``original`` with up to ``max_flips`` random bit flips, then maybe cut at a random length."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, max_flips), label="flips")):
        position = draw(st.integers(0, len(data) - 1), label="position")
        data[position] ^= 1 << draw(st.integers(0, 7), label="bit")
    if draw(st.booleans(), label="truncate"):
        data = data[: draw(st.integers(0, len(data)), label="length")]
    return bytes(data)
