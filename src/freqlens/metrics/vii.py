"""Visual Interpretability of Input-gradients (VII), seed 000 (noise modulation), Definition 3.

``VII = E_(x, y) |⟨d_x, g_x⟩| / (‖d_x‖ · ‖g_x‖)`` with ``d_x = sign(x − x̄)`` (``x̄`` the dataset's mean
image) and ``g_x = sign(∇_x CE(f(x), y))``, both flattened per image. It lies in ``[0, 1]``; higher
means input-gradients that look more like the input.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.utils.scores import check_target_range, input_gradient
from freqlens.utils.signatures import forwards_options
from freqlens.utils.tensors import (
    check_logits,
    check_model_and_images,
    chunks,
    eval_mode,
    resolve_target,
)

__all__ = ["vii", "vii_per_image"]


def _check_mean_image(mean_image: object, inputs: Tensor) -> Tensor:
    if not isinstance(mean_image, Tensor):
        raise TypeError(f"mean_image must be a torch.Tensor, got {type(mean_image).__name__}")
    if not mean_image.is_floating_point():
        raise ValueError(f"mean_image must be a floating tensor, got dtype {mean_image.dtype}")
    if not bool(torch.isfinite(mean_image).all()):
        raise ValueError("mean_image contains NaN or infinite values")
    image_shape = tuple(inputs.shape[1:])
    if mean_image.dim() == 4 and mean_image.shape[0] == 1:
        mean_image = mean_image[0]
    try:
        return torch.broadcast_to(mean_image.to(device=inputs.device, dtype=inputs.dtype), image_shape)
    except RuntimeError as err:
        raise ValueError(
            f"mean_image of shape {tuple(mean_image.shape)} does not match images of shape {image_shape} "
            "(expected C×H×W, 1×C×H×W or broadcastable)"
        ) from err


def _loss(logits: Tensor, target: Tensor) -> Tensor:
    """Summed cross-entropy of ``logits`` (checked, read in float32 at least) for classes ``target``."""
    check_logits(logits, target.shape[0])
    check_target_range(target, logits.shape[1])
    return F.cross_entropy(logits.float(), target, reduction="sum")


def vii_per_image(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    mean_image: Tensor,
    batch_size: int | None = None,
) -> Tensor:
    """Per-image VII terms ``|cos(sign(x − x̄), sign(∇_x CE))|``.

    The gradient is taken w.r.t. the input only (``torch.autograd.grad``; parameter ``.grad`` fields are
    untouched), in eval mode (restored afterwards). An image whose sign vector is all zeros (``x = x̄``,
    or a zero gradient) gets 0.

    Args:
        model: classifier returning logits.
        inputs: ``B×C×H×W`` images in [0, 1].
        target: the labels ``y`` (``LongTensor[B]`` or int); ``None`` = the predicted class.
        mean_image: ``C×H×W`` (or ``1×C×H×W`` / broadcastable) mean image ``x̄`` of the dataset.
        batch_size: images per gradient pass (default: all).

    Returns:
        ``Tensor[B]`` (float64) in ``[0, 1]``.

    Raises:
        TypeError: ``mean_image`` is not a tensor.
        ValueError: ``mean_image`` is not floating, not finite, or does not match the images.
    """
    inputs, chunk = check_model_and_images(model, inputs, batch_size)
    mean_image = _check_mean_image(mean_image, inputs)
    batch = inputs.shape[0]
    values = torch.empty(batch, dtype=torch.float64, device=inputs.device)
    with eval_mode(model):
        target = resolve_target(model, inputs, target, chunk)
        for part in chunks(batch, chunk):
            # Sum over the chunk: each image's gradient is that of its own loss term.
            gradient, _ = input_gradient(model, inputs[part], lambda logits, part=part: _loss(logits, target[part]))
            d = torch.sign(inputs[part] - mean_image).flatten(1).double()
            g = torch.sign(gradient).flatten(1).double()
            norms = d.norm(dim=1) * g.norm(dim=1)
            cosine = (d * g).sum(dim=1).abs() / torch.where(norms > 0, norms, torch.ones_like(norms))
            values[part] = torch.where(norms > 0, cosine, torch.zeros_like(cosine))
    return values


@forwards_options(vii_per_image)
def vii(*args: Any, **options: Any) -> float:
    """VII of seed 000 (Definition 3): the mean of :func:`vii_per_image` over the batch.

    Args:
        model, inputs, target, mean_image, batch_size: as :func:`vii_per_image`.

    Returns:
        The VII, in ``[0, 1]``.
    """
    return float(vii_per_image(*args, **options).mean())
