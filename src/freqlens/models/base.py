"""The base class of the model zoo: input checks and the penultimate-feature protocol.

Every zoo network maps a ``B×C×H×W`` float batch to ``B×num_classes`` logits as
``classifier(forward_features(x))``: :meth:`ZooNet.forward_features` returns the ``B×D`` input of the
final classifier layer (used by the robust-dataset construction of Ilyas et al. 2019, seed 003).
Inputs the network cannot take raise :class:`~freqlens.errors.ModelError` with the model name and the
expected versus the received shape, before any computation.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from freqlens.errors import ModelError


def as_size(value: int | tuple[int, int] | list[int], what: str = "image_size") -> tuple[int, int]:
    """``int`` or ``(H, W)`` -> ``(H, W)`` of positive ints.

    Args:
        value: a side length or ``(H, W)``.
        what: the parameter's name, for messages.

    Returns:
        ``(H, W)``.

    Raises:
        ModelError: not a positive int nor a pair of them (bools refused).
    """
    if isinstance(value, bool):
        raise ModelError(f"{what} must be an int or (H, W), got {value!r}")
    if isinstance(value, int):
        value = (value, value)
    try:
        height, width = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ModelError(f"{what} must be an int or (H, W), got {value!r}") from None
    for side in (height, width):
        if isinstance(side, bool) or not isinstance(side, int) or side < 1:
            raise ModelError(f"{what} must hold positive ints, got {value!r}")
    return int(height), int(width)


class ZooNet(nn.Module):
    """Base of the zoo networks.

    Subclasses set ``self.classifier`` (the final layer) and implement :meth:`_features` (``B×D``);
    :meth:`_logits` defaults to ``classifier(_features(x))``.

    ``fixed_size`` networks (MLP, ViT) take exactly ``image_size``; the others take any
    ``H, W >= min_size`` (``image_size`` is then only recorded).

    Args:
        in_channels: input channels ``C`` (a positive int).
        num_classes: output logits ``K`` (a positive int).
        image_size: the input size, an int or ``(H, W)``.

    Raises:
        ModelError: a non-positive or non-int ``in_channels``, ``num_classes`` or ``image_size``.
    """

    arch: str = "zoo"
    fixed_size: bool = False
    classifier: nn.Module

    def __init__(self, in_channels: int, num_classes: int, image_size: int | tuple[int, int]) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ModelError(f"{self.arch}: in_channels must be a positive int, got {in_channels!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ModelError(f"{self.arch}: num_classes must be a positive int, got {num_classes!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = as_size(image_size)
        self.min_size = 1

    # ------------------------------------------------------------------ checks
    def expected_shape(self) -> str:
        if self.fixed_size:
            height, width = self.image_size
            return f"B×{self.in_channels}×{height}×{width}"
        return f"B×{self.in_channels}×H×W with H, W >= {self.min_size}"

    def check_input(self, x: Tensor) -> None:
        """Raise :class:`ModelError` unless ``x`` is a float batch this network can take."""
        if not isinstance(x, Tensor):
            raise ModelError(f"{self.arch} expects a torch.Tensor, got {type(x).__name__}")
        shape = tuple(x.shape)
        if x.dim() != 4:
            raise ModelError(f"{self.arch} expects a {self.expected_shape()} batch, got shape {shape}")
        if not x.is_floating_point():
            raise ModelError(f"{self.arch} expects float images with pixels in [0, 1], got dtype {x.dtype}")
        if shape[1] != self.in_channels:
            raise ModelError(
                f"{self.arch} was built for {self.in_channels} input channel(s) but got {shape[1]} "
                f"(input shape {shape}; expected {self.expected_shape()})"
            )
        height, width = shape[2], shape[3]
        if self.fixed_size:
            if (height, width) != self.image_size:
                exp_h, exp_w = self.image_size
                raise ModelError(
                    f"{self.arch} was built for {exp_h}×{exp_w} images but got {height}×{width} "
                    f"(input shape {shape}); build it with image_size=({height}, {width})"
                )
        elif min(height, width) < self.min_size:
            raise ModelError(
                f"{self.arch} needs images of at least {self.min_size}×{self.min_size} pixels, got "
                f"{height}×{width} (input shape {shape})"
            )

    # ---------------------------------------------------------------- forward
    def _features(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _logits(self, x: Tensor) -> Tensor:
        return self.classifier(self._features(x))

    def forward_features(self, x: Tensor) -> Tensor:
        """``B×D`` penultimate features: the input of :attr:`classifier`."""
        self.check_input(x)
        return self._features(x)

    def forward(self, x: Tensor) -> Tensor:
        """``B×C×H×W`` -> ``B×num_classes`` logits."""
        self.check_input(x)
        return self._logits(x)

    def extra_repr(self) -> str:
        size = "x".join(map(str, self.image_size)) if self.fixed_size else f">={self.min_size}"
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}, size={size}"


class PooledConvNet(ZooNet):
    """A zoo network whose features are the global average of a convolutional trunk's last map.

    Subclasses build their layers, call :meth:`_finish` with their classifier, and implement
    :meth:`_trunk` (``B×C×H×W`` -> ``B×D×h×w``); the features are ``pool(_trunk(x))`` flattened to ``B×D``.
    """

    def _finish(self, classifier: nn.Module) -> None:
        """Add the global average pool and ``classifier``, then initialise the weights (:func:`init_weights`)."""
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier
        init_weights(self)

    def _trunk(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _features(self, x: Tensor) -> Tensor:
        return self.pool(self._trunk(x)).flatten(1)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``B×C×H×W`` map (ConvNeXt's channels-first norm)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def check_stages(arch: str, **lists: Sequence[int]) -> list[list[int]]:
    """A network's per-stage settings (widths and depths): non-empty, equally long lists of positive ints.

    Args:
        arch: the architecture, named in the error.
        **lists: setting name -> its values, one per stage.

    Returns:
        The settings as lists, in the order given.

    Raises:
        ModelError: an empty list, lists of different lengths, or a value that is not a positive int.
    """
    values = [list(items) for items in lists.values()]
    positive = all(not isinstance(v, bool) and isinstance(v, int) and v >= 1 for items in values for v in items)
    if not values[0] or len({len(items) for items in values}) != 1 or not positive:
        shown = ", ".join(f"{name}={items!r}" for name, items in zip(lists, values))
        raise ModelError(f"{arch}: {' and '.join(lists)} must be equally long lists of positive ints, got {shown}")
    return values


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions, unit/zero norms; used by the conv nets of the zoo."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if layer.weight is not None:
                nn.init.ones_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
