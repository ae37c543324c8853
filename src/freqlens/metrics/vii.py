"""Visual Interpretability of Input-gradients (VII), seed 000 (noise modulation), Definition 3.

``VII = E_(x, y) |⟨d_x, g_x⟩| / (‖d_x‖ · ‖g_x‖)`` with ``d_x = sign(x − x̄)`` (``x̄`` the dataset's mean
image) and ``g_x = sign(∇_x CE(f(x), y))``, both flattened per image. It lies in ``[0, 1]``; higher
means input-gradients that look more like the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.utils.tensors import check_images, chunks, eval_mode, resolve_target

from .faithfulness import _check_batch_size, _check_model, _logits

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


def vii_per_image(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    mean_image: Tensor,
    batch_size: int | None = None,
) -> Tensor:
    """Per-image VII terms ``|cos(sign(x − x̄), sign(∇_x CE))|`` as ``Tensor[B]`` in ``[0, 1]``.

    ``target``: the labels ``y`` (``LongTensor[B]`` or int); ``None`` = the predicted class. The gradient
    is taken w.r.t. the input only (``torch.autograd.grad``; parameter ``.grad`` fields are untouched),
    in eval mode (restored afterwards), ``batch_size`` images at a time (default: all). An image whose
    sign vector is all zeros (``x = x̄``, or a zero gradient) gets 0.
    """
    model = _check_model(model)
    inputs = check_images(inputs)
    mean_image = _check_mean_image(mean_image, inputs)
    batch = inputs.shape[0]
    chunk = _check_batch_size(batch_size, batch)
    values = torch.empty(batch, dtype=torch.float64, device=inputs.device)
    with eval_mode(model):
        target = resolve_target(model, inputs, target, chunk)
        for part in chunks(batch, chunk):
            images = inputs[part].detach().clone().requires_grad_(True)
            with torch.enable_grad():
                logits = _logits(model, images)
                if int(target[part].max()) >= logits.shape[1]:
                    raise ValueError(
                        f"target class {int(target[part].max())} is out of range for a model with "
                        f"{logits.shape[1]} outputs"
                    )
                # Sum over the chunk: each image's gradient is that of its own loss term.
                loss = F.cross_entropy(logits.float(), target[part], reduction="sum")
                (gradient,) = torch.autograd.grad(loss, images)
            d = torch.sign(inputs[part] - mean_image).flatten(1).double()
            g = torch.sign(gradient).flatten(1).double()
            norms = d.norm(dim=1) * g.norm(dim=1)
            cosine = (d * g).sum(dim=1).abs() / torch.where(norms > 0, norms, torch.ones_like(norms))
            values[part] = torch.where(norms > 0, cosine, torch.zeros_like(cosine))
    return values


def vii(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    mean_image: Tensor,
    batch_size: int | None = None,
) -> float:
    """VII of seed 000 (Definition 3): the mean of :func:`vii_per_image` over the batch, in ``[0, 1]``.

    ``mean_image``: ``C×H×W`` (or ``1×C×H×W`` / broadcastable) mean image ``x̄`` of the dataset.
    """
    return float(vii_per_image(model, inputs, target, mean_image, batch_size).mean())
