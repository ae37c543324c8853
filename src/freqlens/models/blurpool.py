"""Anti-aliased twins (Zhang 2019, "Making convolutional networks shift-invariant again"): blur, then subsample.

A strided operation samples its stride-1 result every ``stride`` pixels, which aliases whatever that result
holds above the new Nyquist frequency. :func:`antialias` splits every strided convolution and pooling into
the same operation at stride 1 followed by :class:`BlurPool2d`: a fixed binomial low-pass filter evaluated
only every ``stride`` pixels (Zhang's *ConvBlurPool* and *MaxBlurPool*).

Where the blur goes. Convolution and blur are both linear and shift-invariant, so ``Conv2d(stride 1) ->
BlurPool2d`` equals blurring the convolution's *input* and then applying the original strided convolution
(up to the border handling): the low-pass acts on the output of the previous layer's nonlinearity, as in
Zhang's ResNets, without knowing anything of the model's ``forward``. For a max pool the blur comes after
the dense max (the max is the nonlinearity that creates the high frequencies).

Shapes. BlurPool pads ``(filter_size - 1) // 2`` before and ``filter_size // 2`` after each dimension (Zhang's
reference: symmetric for odd sizes, one more at the end for even sizes) and gives ``ceil(L / stride)`` rows
for ``L`` input rows. A stride-1 convolution or pool gives ``L = H + 2p - d(k - 1)`` rows where the strided
one gave ``floor((L - 1) / s) + 1 = ceil(L / s)``: the same, for every input size. A ``ceil_mode`` max pool
has one more, partial, window for some sizes (VGG and FCNN at 28 px: 7 -> 4); its twin first extends the
input at the bottom / right by replicating the last row / column (:class:`CeilModePad2d`), which leaves the
maximum of a partial window unchanged, so shapes match for every size there too. With ``filter_size=1``
the filter is ``[1]`` and the twin is the original model exactly.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from freqlens.errors import ModelError
from freqlens.models.pooling import record_in_spec, replace_modules

#: Filter sizes :class:`BlurPool2d` and :func:`antialias` accept (binomial filters [1] ... [1, 6, 15, 20, 15, 6, 1]).
FILTER_SIZES = tuple(range(1, 8))
#: Padding modes of :class:`BlurPool2d`.
PAD_MODES = ("reflect", "replicate", "zeros")


def check_filter_size(filter_size: object, where: str = "antialias") -> int:
    """``filter_size`` as an int in :data:`FILTER_SIZES`.

    Args:
        filter_size: the value to check.
        where: the caller's name, for messages.

    Returns:
        ``filter_size`` as an int.

    Raises:
        ModelError: not an int in :data:`FILTER_SIZES` (no bool).
    """
    if isinstance(filter_size, bool) or not isinstance(filter_size, int) or filter_size not in FILTER_SIZES:
        raise ModelError(
            f"{where}: the filter size must be an int from {FILTER_SIZES[0]} to {FILTER_SIZES[-1]}, "
            f"got {filter_size!r}"
        )
    return int(filter_size)


def binomial_filter(filter_size: int) -> Tensor:
    """The ``filter_size × filter_size`` binomial low-pass filter (float64), summing to 1: the outer product
    of the row ``C(n-1, k) / 2**(n-1)`` with itself (3 -> ``[1, 2, 1] / 4``, 4 -> ``[1, 3, 3, 1] / 8``)."""
    n = check_filter_size(filter_size, "binomial_filter")
    row = torch.tensor([math.comb(n - 1, k) for k in range(n)], dtype=torch.float64) / 2 ** (n - 1)
    return torch.outer(row, row)


class BlurPool2d(nn.Module):
    """Blur with a binomial filter, then keep every ``stride``-th pixel (Zhang 2019).

    Channel-agnostic (the same filter on every channel, as a depthwise convolution built at each call), with
    no trainable parameter: the filter is a non-persistent buffer (it follows ``.to()``, and is not in the
    state dict: it is rebuilt from ``filter_size``). ``filter_size=1`` is plain subsampling
    ``x[..., ::sh, ::sw]``.

    Each dimension is padded ``(filter_size - 1) // 2`` before and ``filter_size // 2`` after, so ``L`` rows
    give ``ceil(L / stride)``. With ``pad_mode="reflect"`` (Zhang's default) a dimension too short to
    reflect (a 1×1 map, or 2 rows under a 5-tap filter) is padded by replication instead.

    Args:
        filter_size: Size of the binomial filter, 1 to 7 (3 is Zhang's "Tri-3", 5 "Bin-5").
        stride: Subsampling step: an int or ``(sh, sw)``.
        pad_mode: ``"reflect"``, ``"replicate"`` or ``"zeros"``.
    """

    filter: Tensor

    def __init__(self, filter_size: int = 3, stride: int | tuple[int, int] = 2, pad_mode: str = "reflect") -> None:
        super().__init__()
        self.filter_size = check_filter_size(filter_size, "BlurPool2d")
        strides = _pair(stride)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in strides) or len(strides) != 2:
            raise ModelError(f"BlurPool2d: stride must be a positive int or a pair of them, got {stride!r}")
        self.stride: tuple[int, int] = (int(strides[0]), int(strides[1]))
        if pad_mode not in PAD_MODES:
            raise ModelError(f"BlurPool2d: pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.pad_mode = pad_mode
        self.register_buffer("filter", binomial_filter(self.filter_size).to(torch.get_default_dtype()),
                             persistent=False)

    def _pad(self, x: Tensor) -> Tensor:
        before, after = (self.filter_size - 1) // 2, self.filter_size // 2
        if self.pad_mode == "zeros":
            return F.pad(x, (before, after, before, after))
        # one dimension at a time: reflection needs more rows than the padding, replication does not
        for index, size in ((-1, x.shape[-1]), (-2, x.shape[-2])):
            mode = "reflect" if self.pad_mode == "reflect" and max(before, after) < size else "replicate"
            pad = (before, after, 0, 0) if index == -1 else (0, 0, before, after)
            x = F.pad(x, pad, mode=mode)
        return x

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ModelError(f"BlurPool2d expects a B×C×H×W tensor, got shape {tuple(x.shape)}")
        if self.filter_size == 1:  # x[..., ::sh, ::sw], as a dense tensor in x's memory format
            return F.avg_pool2d(x, 1, self.stride)
        channels = x.shape[1]
        weight = self.filter.to(dtype=x.dtype, device=x.device).expand(channels, 1, -1, -1)
        return F.conv2d(self._pad(x), weight, stride=self.stride, groups=channels)

    def extra_repr(self) -> str:
        return f"filter_size={self.filter_size}, stride={self.stride}, pad_mode={self.pad_mode!r}"


def _pool_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Output rows of a torch pool over ``size`` rows (torch's formula, ceil mode's last-window rule included)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


class CeilModePad2d(nn.Module):
    """Replicate the last row / column of the input of the stride-1 twin of a ``ceil_mode`` pool so that it
    also evaluates the original's partial last window (replication leaves the maximum of a window that
    holds the last pixel unchanged); nothing happens for sizes without a partial window.

    Args:
        kernel_size: the original pool's kernel size (int or ``(kH, kW)``).
        stride: the original pool's stride (int or pair).
        padding: the original pool's padding (int or pair).
        dilation: the original pool's dilation (int or pair).
    """

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int],
                 padding: int | tuple[int, int], dilation: int | tuple[int, int]) -> None:
        super().__init__()
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)

    def forward(self, x: Tensor) -> Tensor:
        extra = []
        for axis, size in enumerate(x.shape[-2:]):
            k, s, p, d = self.kernel_size[axis], self.stride[axis], self.padding[axis], self.dilation[axis]
            dense = size + 2 * p - d * (k - 1)  # rows of the stride-1 pool
            extra.append(max(0, (_pool_size(size, k, s, p, d, True) - 1) * s + 1 - dense))
        if not any(extra):
            return x
        return F.pad(x, (0, extra[1], 0, extra[0]), mode="replicate")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def _strided(module: nn.Module) -> bool:
    return tuple(_pair(module.stride)) != (1, 1)


def _conv_blur(conv: nn.Conv2d, filter_size: int) -> nn.Sequential:
    stride = _pair(conv.stride)
    conv.stride = (1, 1)
    return nn.Sequential(conv, BlurPool2d(filter_size, stride))


def _max_blur(pool: nn.MaxPool2d, filter_size: int) -> nn.Sequential:
    if pool.return_indices:
        raise ModelError("antialias: cannot replace a MaxPool2d with return_indices=True")
    dense = nn.MaxPool2d(pool.kernel_size, stride=1, padding=pool.padding, dilation=pool.dilation,
                         ceil_mode=pool.ceil_mode)
    blur = BlurPool2d(filter_size, _pair(pool.stride))
    if pool.ceil_mode:
        return nn.Sequential(CeilModePad2d(pool.kernel_size, pool.stride, pool.padding, pool.dilation), dense, blur)
    return nn.Sequential(dense, blur)


def _avg_blur(pool: nn.AvgPool2d, filter_size: int) -> nn.Sequential:
    dense = nn.AvgPool2d(pool.kernel_size, stride=1, padding=pool.padding, ceil_mode=False,
                         count_include_pad=pool.count_include_pad, divisor_override=pool.divisor_override)
    return nn.Sequential(dense, BlurPool2d(filter_size, _pair(pool.stride)))


def antialias(model: nn.Module, filter_size: int = 3) -> nn.Module:
    """The anti-aliased twin of ``model`` (Zhang 2019): a deep copy in which every strided operation is
    the same operation at stride 1 followed by :class:`BlurPool2d` (``filter_size``, the original stride).

    - ``Conv2d`` with stride > 1 -> ``Sequential(Conv2d(same weights, stride 1), BlurPool2d)``, patch
      embeddings included (ViT's ``patch_embed``, ConvNeXt's patchify stem and 2×2 downsampling convs: for
      them the twin blurs the input before patchifying). The same ``filter_size`` serves every stride, as in
      Zhang's reference (a stride-4 patch embedding is attenuated above, not cut at, its new Nyquist).
    - ``MaxPool2d`` with stride > 1 -> ``Sequential(MaxPool2d(stride 1, same kernel, padding, dilation),
      BlurPool2d)`` (MaxBlurPool), preceded by :class:`CeilModePad2d` for a ``ceil_mode`` pool.
    - ``AvgPool2d`` with stride > 1 and no ``ceil_mode`` -> ``Sequential(AvgPool2d(stride 1), BlurPool2d)``.
      A ``ceil_mode`` average pool is left as it is: its partial last window has a divisor of its own that a
      stride-1 pool cannot reproduce, and average pooling already low-passes (so the twin of a model passed
      through :func:`~freqlens.models.swap_pooling` keeps its pools: build both with
      ``build(..., pooling="avg", antialias=N)``, which anti-aliases first).
    - Adaptive pools, other layers, and functional calls inside ``forward`` are not touched.

    Output shapes, and those of every replaced module, are unchanged for every input size; trainable
    parameters are the same (BlurPool has none); ``filter_size=1`` computes exactly what ``model`` does.
    ``model`` itself is left untouched. A model built by :func:`freqlens.models.build` records
    ``antialias=filter_size`` in its spec, so checkpoints rebuild the twin.

    Args:
        model: Any ``nn.Module``.
        filter_size: Binomial filter size, 1 to 7 (3: ``[1, 2, 1] / 4``; Zhang's default).

    Raises:
        ModelError: A bad ``filter_size``, a ``MaxPool2d`` with ``return_indices=True``, or a model built
            by ``build`` that is already anti-aliased or already pooling-swapped.
    """
    filter_size = check_filter_size(filter_size)
    if not isinstance(model, nn.Module):
        raise TypeError(f"antialias expects a torch.nn.Module, got {type(model).__name__}")
    for module in model.modules():
        spec = getattr(module, "freqlens_spec", None)
        kwargs = spec.get("kwargs") if isinstance(spec, dict) else None
        if isinstance(kwargs, dict) and kwargs.get("antialias") is not None:
            raise ModelError(f"antialias: the model is already anti-aliased (antialias={kwargs['antialias']})")
        if isinstance(kwargs, dict) and kwargs.get("pooling") is not None:
            raise ModelError(
                f"antialias: the model's pooling was swapped (pooling={kwargs['pooling']!r}); build it with "
                f"build(..., pooling={kwargs['pooling']!r}, antialias={filter_size}), which anti-aliases first"
            )

    def replacement(module: nn.Module) -> nn.Module | None:
        if isinstance(module, nn.Conv2d) and _strided(module):
            return _conv_blur(module, filter_size)
        if isinstance(module, nn.MaxPool2d) and _strided(module):
            return _max_blur(module, filter_size)
        if isinstance(module, nn.AvgPool2d) and _strided(module) and not module.ceil_mode:
            return _avg_blur(module, filter_size)
        return None

    return record_in_spec(replace_modules(copy.deepcopy(model), replacement), "antialias", filter_size)


__all__ = ["FILTER_SIZES", "BlurPool2d", "CeilModePad2d", "antialias", "binomial_filter"]
