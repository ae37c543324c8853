"""Automatic chunk size: how many images go through one forward (+ backward) pass.

Every function that multiplies the batch (noise samples, IG steps, masks...) streams its images in
chunks of at most ``batch_size``; ``batch_size=None`` asks :func:`auto_batch_size`.

The estimate is the memory one image costs in a pass: the bytes autograd saves for the backward pass
during a 1-image probe forward (model parameters excluded), measured once per (model, image shape,
dtype, device) and cached.

* CPU: throughput is bounded by the caches, not by RAM. One 1,600-image forward+backward runs about
  3.8× slower than fifty 32-image passes (and 512-image chunks ~35 % slower than 32-image ones on
  resnet_small, 1 thread), so the chunk is the number of images whose saved
  activations fit :data:`CPU_ACTIVATION_BUDGET`, clamped to ``[CPU_MIN_CHUNK, CPU_MAX_CHUNK]``.
* CUDA: bounded by memory: :data:`CUDA_MEMORY_FRACTION` of the free device memory divided by twice
  the per-image cost (activations + their gradients), clamped to ``[1, CUDA_MAX_CHUNK]``.

The chunk size never changes a result beyond float rounding (each image's gradient is computed
independently of its chunk mates: models are in eval mode).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor, nn

from freqlens.utils.tensors import check_batch_size, eval_mode

from .passes import uncounted

__all__ = [
    "CPU_ACTIVATION_BUDGET",
    "CPU_MAX_CHUNK",
    "CPU_MIN_CHUNK",
    "CUDA_MAX_CHUNK",
    "CUDA_MEMORY_FRACTION",
    "auto_batch_size",
    "check_batch_size",
    "resolve_batch_size",
    "saved_bytes_per_image",
]

#: Saved-activation bytes per chunk on CPU (about the size of a shared last-level cache × 2).
CPU_ACTIVATION_BUDGET = 48 * 2**20
CPU_MIN_CHUNK = 4
CPU_MAX_CHUNK = 128
CUDA_MEMORY_FRACTION = 0.5
CUDA_MAX_CHUNK = 1024

_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, int]] = weakref.WeakKeyDictionary()


def saved_bytes_per_image(model: nn.Module, inputs: Tensor) -> int:
    """Bytes autograd saves for backward when ``model`` (eval mode) forwards one image of ``inputs``.

    Tensors sharing a storage are counted once; the model's parameters and buffers are excluded (they
    do not grow with the chunk). Cached per (model, C×H×W, dtype, device). The probe is not counted by
    :func:`~freqlens.attribution.base.count_passes` (see :func:`~freqlens.attribution.base.uncounted`).

    Args:
        model: the network.
        inputs: ``B×C×H×W`` images (only the first one is forwarded).

    Returns:
        Bytes per image (at least the input's own size).
    """
    key = (tuple(inputs.shape[1:]), inputs.dtype, str(inputs.device))
    cached = _CACHE.get(model, {}).get(key)
    if cached is not None:
        return cached
    fixed = {p.data_ptr() for p in model.parameters()} | {b.data_ptr() for b in model.buffers()}
    seen: set[int] = set()
    total = 0

    def pack(tensor: Tensor) -> Tensor:
        nonlocal total
        if tensor.layout == torch.strided and tensor.device.type != "meta":
            ptr = tensor.untyped_storage().data_ptr()
            if ptr not in fixed and ptr not in seen:
                seen.add(ptr)
                total += tensor.untyped_storage().nbytes()
        return tensor

    probe = inputs[:1].detach().clone().requires_grad_(True)
    with (eval_mode(model), torch.enable_grad(), uncounted(),
          torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)):
        model(probe)
    # The input and the output logits are part of every pass as well.
    total = max(total, 1) + probe.numel() * probe.element_size()
    _CACHE.setdefault(model, {})[key] = total
    return total


def auto_batch_size(model: nn.Module, inputs: Tensor, *, backward: bool = True) -> int:
    """Images per pass for ``model`` on images shaped like ``inputs`` (see the module doc).

    Args:
        model: the network.
        inputs: ``B×C×H×W`` images (their shape, dtype and device fix the estimate).
        backward: passes also back-propagate; ``False`` (forward passes only, black-box methods) allows
            twice the chunk.

    Returns:
        The chunk size, ≥ 1.
    """
    per_image = saved_bytes_per_image(model, inputs)
    if inputs.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(inputs.device)
        factor = 2 if backward else 1
        return int(max(1, min(CUDA_MAX_CHUNK, CUDA_MEMORY_FRACTION * free // (factor * per_image))))
    budget = CPU_ACTIVATION_BUDGET * (1 if backward else 2)
    return int(max(CPU_MIN_CHUNK, min(CPU_MAX_CHUNK * (1 if backward else 2), budget // per_image)))


def resolve_batch_size(batch_size: int | None, model: nn.Module, inputs: Tensor, *, backward: bool = True) -> int:
    """``batch_size`` validated (positive int), or :func:`auto_batch_size` for ``None``.

    Args:
        batch_size: a positive int, or ``None`` for automatic.
        model: the network (for the automatic size).
        inputs: ``B×C×H×W`` images (for the automatic size).
        backward: passes also back-propagate (see :func:`auto_batch_size`).

    Returns:
        The chunk size.

    Raises:
        ValueError: ``batch_size`` is not ``None`` nor a positive int.
    """
    if batch_size is None:
        return auto_batch_size(model, inputs, backward=backward)
    check_batch_size(batch_size)
    return int(batch_size)


def segments(start: int, stop: int, period: int) -> list[tuple[slice, int, slice]]:
    """Split the flat range ``[start, stop)`` of ``q = row · period + col`` into per-row runs.

    Lets callers accumulate a chunk with contiguous slice additions (``out[col_slice] +=
    part[chunk_slice]``) instead of ``index_add_``, whose CPU kernel opens one parallel region per index
    and crawls on busy machines.

    Args:
        start: first flat index ``q`` of the chunk.
        stop: end (exclusive) of the chunk.
        period: row length.

    Returns:
        ``(chunk_slice, row, col_slice)`` triples: items ``chunk_slice`` of a chunk holding
            ``q ∈ [start, stop)`` are ``(row, col)`` for ``col`` in ``col_slice``.
    """
    runs = []
    q = start
    while q < stop:
        row, col = divmod(q, period)
        end = min(stop, (row + 1) * period)
        runs.append((slice(q - start, end - start), row, slice(col, col + end - q)))
        q = end
    return runs
