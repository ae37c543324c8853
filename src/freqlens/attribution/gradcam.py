"""Class activation maps: GradCAM (Selvaraju et al., ICCV 2017) and GradCAM++ (Chattopadhay et al.,
WACV 2018).

A forward hook on a convolutional ``layer`` captures its activations ``A`` (``B×K×h×w``); the gradient
``g = ∂y_c/∂A`` of the target logit follows by autograd. The map is ``ReLU(Σ_k w_k A_k)`` upsampled
bilinearly to the input size (``B×1×H×W``):

* GradCAM: ``w_k = mean_ij g_kij``;
* GradCAM++: ``w_k = Σ_ij α_kij ReLU(g_kij)`` with the closed form obtained for ``S = exp(y_c)``:
  ``α = g² / (2 g² + Σ_ab A_kab · g³)`` (0 where the denominator vanishes). The common factor
  ``exp(y_c)`` of the first-order term is dropped (it only rescales each map).

``layer`` is a sub-module of the model, its dotted name (``"body.3"``), or ``None`` (default) for the
**output of the last convolutional block** (:func:`block_output_layer`): after the last
:class:`torch.nn.Conv2d` that runs, the last module whose output is still a ``B×K×h×w`` map of that
convolution's resolution, before any pooling — i.e. after the block's BatchNorm, residual addition and
ReLU: ``layer4`` of a torchvision ResNet, the last stage of freqlens' ``resnet_small`` / ``resnet18``
and ``convnext_tiny``, the ReLU after the last convolution of ``lenet`` / ``vgg`` (Grad-CAM's
"last convolutional layer" in the sense of Selvaraju et al.: the rectified feature maps, not the bare
convolution's pre-activation output). It is found by one uncounted forward pass of one image, once
per model and input shape. A model without convolution (MLP) or with attention modules (ViT: its
convolution is only the patch embedding) raises :class:`~freqlens.errors.ModelError` (a ``ValueError``)
unless ``layer`` is given. The hook lives in a context manager and is removed even if the forward pass
raises.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.attribution.base import (
    Call,
    Explainer,
    Family,
    PassCount,
    check_logits,
    chunks,
    eval_mode,
    progress_bar,
    select_score,
    uncounted,
)
from freqlens.errors import ModelError


def _is_attention(module: nn.Module) -> bool:
    attention_types = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    return isinstance(module, attention_types) or "attention" in type(module).__name__.lower()


#: Modules after which a feature map is no longer the last block's output (they pool or flatten it).
_POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LPPool2d,
            nn.FractionalMaxPool2d, nn.Flatten)

_AUTO_LAYERS: weakref.WeakKeyDictionary[nn.Module, dict[tuple, str]] = weakref.WeakKeyDictionary()


def check_cam_model(model: nn.Module) -> None:
    """Raise :class:`ModelError` when a CAM layer cannot be chosen automatically: a transformer (attention
    modules) or a model without ``nn.Conv2d``."""
    if any(isinstance(module, torch.jit.ScriptModule) for module in model.modules()):
        raise ModelError(
            "GradCAM needs forward hooks on a layer, and a TorchScript model runs without Python hooks; load "
            "the model from its code instead (--model PKG.MODULE:FACTORY --weights FILE, or "
            "freqlens.models.load_user_model) to use CAM methods"
        )
    if any(_is_attention(module) for module in model.modules()):
        raise ModelError(
            f"GradCAM cannot pick a layer of {type(model).__name__} automatically: it is a transformer "
            "(it has attention modules; a convolution there is only the patch embedding) and CAM methods "
            "apply to CNNs; pass layer=... explicitly to force a B×K×h×w feature map"
        )
    if not any(isinstance(module, nn.Conv2d) for module in model.modules()):
        raise ModelError(
            f"GradCAM needs a convolutional layer, but {type(model).__name__} has no nn.Conv2d "
            "(CAM methods do not apply to MLPs or vision transformers); pass layer=... explicitly "
            "to use another B×K×h×w feature map"
        )


def block_output_layer(model: nn.Module, inputs: Tensor) -> str:
    """The dotted name of the module GradCAM uses by default on images shaped like ``inputs``.

    One forward pass of one image (eval mode, no gradient, not counted by ``count_passes``) records the
    module calls in the order they finish. From the last ``nn.Conv2d`` call on, the candidates are the
    calls whose output is a ``B×K×h×w`` tensor with the batch and ``h×w`` of that convolution's output,
    up to the first pooling or flattening module (:data:`_POOLING`); the chosen one is the last
    candidate — the outermost module that returns the last block's output (``layer4`` of a ResNet: after
    its BatchNorm, residual addition and ReLU) — whose module is not called again later in the forward
    pass (a shared ``ReLU`` is skipped). When no call qualifies, the last convolution itself. The root
    module is never chosen. Cached per model and ``C×H×W``.

    Args:
        model: a CNN.
        inputs: ``B×C×H×W`` images (only the first one goes through the model).

    Returns:
        The dotted module name (for ``model.get_submodule``).

    Raises:
        ModelError: a TorchScript model, a transformer, a model without ``nn.Conv2d``, or no convolution
            ran during the forward pass.
    """
    check_cam_model(model)
    key = tuple(inputs.shape[1:])
    cached = _AUTO_LAYERS.get(model, {}).get(key)
    if cached is not None:
        return cached
    names: dict[int, str] = {}
    for name, module in model.named_modules():
        names.setdefault(id(module), name)
    calls: list[tuple[nn.Module, tuple[int, ...] | None]] = []

    def record(module: nn.Module, args: object, output: object) -> None:
        calls.append((module, tuple(output.shape) if isinstance(output, Tensor) else None))

    handles = [module.register_forward_hook(record) for module in model.modules()]
    try:
        with torch.no_grad(), eval_mode(model), uncounted():
            model(inputs[:1].detach())
    finally:
        for handle in handles:
            handle.remove()
    convs = [index for index, (module, _) in enumerate(calls) if isinstance(module, nn.Conv2d)]
    if not convs:
        raise ModelError(f"GradCAM: no nn.Conv2d of {type(model).__name__} ran during the forward pass; "
                         "pass layer=... explicitly")
    last = convs[-1]
    reference = calls[last][1]
    candidates = [last]
    for index in range(last + 1, len(calls)):
        module, shape = calls[index]
        if isinstance(module, _POOLING):
            break
        if module is model or reference is None or shape is None:
            continue
        if len(shape) == 4 and shape[0] == reference[0] and shape[2:] == reference[2:]:
            candidates.append(index)
    chosen = last
    for index in reversed(candidates):
        module = calls[index][0]
        if not any(other is module for other, _ in calls[index + 1:]):
            chosen = index
            break
    name = names[id(calls[chosen][0])]
    _AUTO_LAYERS.setdefault(model, {})[key] = name
    return name


def find_layer(model: nn.Module, layer: nn.Module | str | None, inputs: Tensor | None = None) -> nn.Module:
    """Resolve ``layer`` inside ``model``.

    Args:
        model: the CNN.
        layer: a sub-module of ``model``, its dotted name, or ``None``: with ``inputs``, the block output
            of :func:`block_output_layer` (what GradCAM uses); without ``inputs`` (no shapes known), the
            last ``nn.Conv2d`` registered in the model.
        inputs: ``B×C×H×W`` images that fix the shapes for ``layer=None``, or ``None``.

    Returns:
        The module.

    Raises:
        ModelError: an unknown name, a module that is not part of ``model``, a bad ``layer`` type, or no
            layer can be chosen automatically.
    """
    if layer is None:
        check_cam_model(model)
        if inputs is not None:
            return model.get_submodule(block_output_layer(model, inputs))
        return [module for module in model.modules() if isinstance(module, nn.Conv2d)][-1]
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError:
            names = [name for name, _ in model.named_modules() if name]
            raise ModelError(
                f"{type(model).__name__} has no sub-module named {layer!r}; known names: {', '.join(names[:30])}"
                + (" ..." if len(names) > 30 else "")
            ) from None
    if isinstance(layer, nn.Module):
        if not any(module is layer for module in model.modules()):
            raise ModelError(f"the layer {type(layer).__name__} is not a sub-module of {type(model).__name__}")
        return layer
    raise ModelError(f"layer must be an nn.Module, a dotted name or None, got {type(layer).__name__}")


@contextlib.contextmanager
def capture_output(layer: nn.Module) -> Iterator[list[Tensor]]:
    """Record the outputs of ``layer`` in the yielded list while the block runs; the hook is always removed.

    The hook hands a clone downstream, so in-place operations that follow the layer (``ReLU(inplace=True)``)
    do not alter the captured activations.
    """
    outputs: list[Tensor] = []

    def hook(module: nn.Module, args: object, output: object) -> object:
        if not isinstance(output, Tensor):
            raise ModelError(f"the CAM layer {type(module).__name__} must return a tensor, got {type(output).__name__}")
        outputs.append(output)
        return output.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


class GradCAM(Explainer):
    """GradCAM maps ``B×1×H×W`` (Selvaraju et al. 2017).

    Args:
        model: a CNN returning ``B×num_classes`` logits.
        layer: ``nn.Module`` of the model, its dotted name, or ``None`` (default) = the output of the last
            convolutional block, chosen from the first inputs' shape (:func:`block_output_layer`; the
            :attr:`layer` attribute holds it after a call).
        batch_size: max images per forward/backward pass (``None``: automatic, see ``_batching``).
        progress: show a tqdm bar over the chunks.
    """

    per_channel = False
    family = Family.CAM
    name = "gradcam"
    predicts_target = True

    def __init__(
        self, model: nn.Module, layer: nn.Module | str | None = None, batch_size: int | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(model, batch_size=batch_size, progress=progress)
        self._layer = None if layer is None else find_layer(model, layer)
        if layer is None:
            check_cam_model(model)  # fail early: no convolution, or a transformer
        self._auto: nn.Module | None = None

    @property
    def layer(self) -> nn.Module | None:
        """The layer given, else the automatic one of the last call (``None`` before any call)."""
        return self._layer if self._layer is not None else self._auto

    def layer_for(self, inputs: Tensor) -> nn.Module:
        """The layer used on images shaped like ``inputs``: the given one or :func:`block_output_layer`."""
        if self._layer is not None:
            return self._layer
        self._auto = self.model.get_submodule(block_output_layer(self.model, inputs))
        return self._auto

    def planned_passes(self, height: int, width: int) -> PassCount:
        """One forward and one backward pass per image (the layer's choice, once per shape, is not counted).

        Args:
            height: image height in pixels (unused).
            width: image width in pixels (unused).
        """
        return PassCount(forward=1, backward=1)

    @staticmethod
    def _weights(activations: Tensor, gradients: Tensor) -> Tensor:
        """Channel weights ``B×K`` from activations and gradients ``B×K×h×w``."""
        return gradients.mean(dim=(2, 3))

    def _attribute(self, call: Call) -> Tensor:
        inputs, target = call.inputs, call.target
        layer = self.layer_for(inputs)
        maps = []
        with capture_output(layer) as captured, torch.enable_grad():
            parts = list(chunks(inputs.shape[0], call.chunk))
            for part in progress_bar(parts, len(parts), self.progress, type(self).__name__):
                captured.clear()
                logits = check_logits(self.model(inputs[part].clone().requires_grad_(True)), part.stop - part.start)
                activations = self._activations(captured, layer)
                part_target = logits.argmax(dim=1) if target is None else target[part]
                score = select_score(logits, part_target, "logit").sum()
                (gradients,) = torch.autograd.grad(score, activations)
                activations = activations.detach()
                weights = self._weights(activations, gradients)
                cam = torch.relu((weights[:, :, None, None] * activations).sum(dim=1, keepdim=True))
                maps.append(F.interpolate(cam, size=inputs.shape[-2:], mode="bilinear", align_corners=False))
                captured.clear()
        return torch.cat(maps)

    @staticmethod
    def _activations(captured: list[Tensor], layer: nn.Module) -> Tensor:
        """The CAM layer's ``B×K×h×w`` output of the last forward pass."""
        if not captured:
            raise ModelError(f"the CAM layer {type(layer).__name__} was not called during the forward pass")
        activations = captured[-1]
        if activations.dim() != 4:
            raise ModelError(
                f"CAM methods need a B×K×h×w feature map, but layer {type(layer).__name__} "
                f"returns shape {tuple(activations.shape)} (not a convolutional layer?)"
            )
        return activations

    def settings(self) -> dict[str, object]:
        """``layer`` (its class name; ``None``, shown ``auto``, before the first call of an automatic layer) and
        ``batch_size``."""
        return {"layer": None if self.layer is None else type(self.layer).__name__, "batch_size": self.batch_size}


class GradCAMPlusPlus(GradCAM):
    """GradCAM++ maps ``B×1×H×W`` (Chattopadhay et al. 2018), closed-form ``α`` from the ``exp`` score."""

    name = "gradcam_pp"

    @staticmethod
    def _weights(activations: Tensor, gradients: Tensor) -> Tensor:
        grad2 = gradients**2
        grad3 = grad2 * gradients
        denominator = 2 * grad2 + activations.sum(dim=(2, 3), keepdim=True) * grad3
        alpha = grad2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        return (alpha * torch.relu(gradients)).sum(dim=(2, 3))
