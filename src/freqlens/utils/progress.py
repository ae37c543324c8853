"""One progress bar for every streamed loop (tqdm on stderr, only when asked for and worth it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["progress_bar", "progress_counter"]

_T = TypeVar("_T")


def progress_bar(items: Iterable[_T], total: int, enabled: bool, desc: str) -> Iterable[_T]:
    """Wrap ``items`` in a tqdm bar on stderr when ``enabled`` and there is more than one item.

    Args:
        items: what the loop iterates over (chunk slices, chunk starts...).
        total: the number of items.
        enabled: ``False`` returns ``items`` unchanged.
        desc: the bar's label.

    Returns:
        The tqdm bar, or ``items`` itself when disabled or for at most one item.
    """
    if not enabled or total <= 1:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=desc, leave=False)


def progress_counter(total: int, desc: str, enabled: bool) -> tqdm:
    """A tqdm counter of images on stderr (``bar.update(n)``).

    Args:
        total: the number of images.
        desc: the counter's label.
        enabled: ``False`` gives a silent (disabled) counter.

    Returns:
        The tqdm counter.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, disable=not enabled)
