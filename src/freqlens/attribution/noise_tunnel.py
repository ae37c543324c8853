"""Noise tunnel: SmoothGrad (Smilkov et al. 2017), SmoothGrad² and VarGrad (Adebayo et al. 2018).

Wrappers around *any* explainer (gradient, black-box, FORGrad, another noise tunnel). For ``n``
noisy copies ``x + ε_s``, ``ε_s ~ N(0, σ²)``, of every image they return the mean of the maps
(SmoothGrad), the mean of their squares (SmoothGrad²) or their variance (VarGrad). ``σ`` is ``sigma``
when given (absolute, pixel units), else ``noise_level × (max − min)`` of each image.

Streaming: the ``n × B`` (sample, image) pairs are cut into chunks of at most ``batch_size`` noisy
images; the wrapped explainer is called once per chunk (for a gradient explainer: one forward +
backward pass), and the sums of maps and squared maps are accumulated in float64. Memory does not
grow with ``n``.

Reproducibility: one seed per sample is drawn from ``generator`` up front; sample ``s``'s noise for
all ``B`` images is one ``randn`` from a generator seeded with it, whatever the chunking, so the
result does not depend on ``batch_size``. A stochastic wrapped explainer (RISE, another noise
tunnel...) gets a child generator seeded per sample and is called once per sample on all ``B`` noisy
images of that sample (so its own draws cannot depend on ``batch_size`` either; it bounds its memory
with its own ``batch_size``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from freqlens.utils.signatures import forwards_options

from ._batching import auto_batch_size, segments
from .base import (
    PassCount,
    WrapperExplainer,
    accumulation_dtype,
    call_explainer,
    check_images,
    is_stochastic,
    pixel_range,
    planned_passes,
    progress_bar,
    resolve_target,
)

__all__ = ["NoiseTunnel", "SmoothGrad", "SmoothGradSq", "VarGrad"]

#: Noisy images per call when the wrapped explainer has no ``model`` to size chunks from.
DEFAULT_CHUNK = 32
_SEED_HIGH = 2**62


def _check_number(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class NoiseTunnel(WrapperExplainer):
    """Shared machinery of :class:`SmoothGrad`, :class:`SmoothGradSq` and :class:`VarGrad`.

    ``per_channel``, ``family`` and ``model`` follow the wrapped explainer.

    Args:
        explainer: any object with ``attribute(inputs, target)`` returning ``B×C'×H×W`` maps.
        n: noisy samples per image (a positive int).
        noise_level: the noise std as a fraction of each image's range ``max − min`` (used when
            ``sigma`` is ``None``).
        sigma: the noise std in absolute pixel units (overrides ``noise_level``).
        batch_size: max noisy images per call of a deterministic wrapped explainer (``None``:
            automatic, from the wrapped explainer's ``model``).
        generator: the default source of randomness (``attribute`` can override it).
        progress: show a tqdm bar over the chunks.

    Raises:
        ValueError: a bad ``n``, a negative or non-finite ``noise_level`` / ``sigma``, or a bad
            ``batch_size``.
        TypeError: ``explainer`` has no ``attribute`` method, or ``generator`` is not a
            ``torch.Generator``.
    """

    stochastic = True  # type: ignore[assignment]

    def __init__(
        self,
        explainer: object,
        n: int = 50,
        noise_level: float = 0.15,
        sigma: float | None = None,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(explainer, batch_size=batch_size, progress=progress, generator=generator)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n (number of noisy samples) must be a positive integer, got {n!r}")
        self.n = n
        self.noise_level = _check_number(noise_level, "noise_level")
        self.sigma = None if sigma is None else _check_number(sigma, "sigma")

    def attribute(
        self, inputs: Tensor, target: Tensor | int | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """The statistic of the maps of ``n`` noisy copies of ``inputs``.

        Args:
            inputs, target: as :meth:`Explainer.attribute <freqlens.attribution.Explainer.attribute>`.
            generator: the source of randomness of this call (``None``: the tunnel's own).

        Returns:
            Maps of the same shape as one map of the wrapped explainer.
        """
        first, second = self.moments(inputs, target, generator)
        return self._statistic(first, second).to(inputs.dtype)

    def _statistic(self, first: Tensor, second: Tensor) -> Tensor:
        raise NotImplementedError

    def planned_passes(self, height: int, width: int) -> PassCount | None:
        """``n`` times the wrapped explainer's passes per image.

        Args:
            height: image height in pixels.
            width: image width in pixels.

        Returns:
            The pass count, or ``None`` when the wrapped explainer does not say.
        """
        inner = planned_passes(self.explainer, height, width)
        if inner is None:
            return None
        return PassCount(forward=self.n * inner.forward, backward=self.n * inner.backward)

    def noise_scale(self, inputs: Tensor) -> Tensor:
        """σ per image, ``Tensor[B]``: ``sigma``, or ``noise_level × (max − min)`` of each image."""
        if self.sigma is not None:
            return torch.full((inputs.shape[0],), self.sigma, dtype=inputs.dtype, device=inputs.device)
        flat = inputs.flatten(1)
        return self.noise_level * (flat.amax(dim=1) - flat.amin(dim=1))

    def moments(
        self, inputs: Tensor, target: Tensor | int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mean of the maps and mean of the squared maps over the ``n`` samples.

        Args:
            inputs: ``B×C×H×W`` images.
            target: ``LongTensor[B]``, an int, or ``None`` = the predicted class (needs a wrapped
                explainer with a ``model``).
            generator: the source of randomness of this call (``None``: the tunnel's own).

        Returns:
            ``(mean, mean_of_squares)``, float64 on CPU/CUDA (float32 on MPS).

        Raises:
            ValueError: ``target`` is ``None`` and the wrapped explainer has no model, or it returns
                malformed maps.
        """
        inputs = check_images(inputs).detach()
        generator = self.generator if generator is None else generator
        batch, device = inputs.shape[0], inputs.device
        model = self.model
        if self.batch_size is not None:
            chunk = self.batch_size
        elif model is not None:
            chunk = auto_batch_size(model, inputs, backward=self.family.backward)
        else:
            chunk = DEFAULT_CHUNK
        if model is not None:
            target = resolve_target(model, inputs, target, chunk)
        elif target is None:
            raise ValueError(f"{type(self).__name__}: the wrapped explainer has no model; give an explicit target")
        else:
            target = resolve_target(None, inputs, target)  # type: ignore[arg-type]
        scale = self.noise_scale(inputs).view(-1, 1, 1, 1)

        # Two seeds per sample (its noise, its child generator), drawn before any work.
        seed_device = generator.device if generator is not None else torch.device("cpu")
        seeds = torch.randint(0, _SEED_HIGH, (self.n, 2), generator=generator, device=seed_device).tolist()
        stochastic = is_stochastic(self.explainer)

        acc_dtype = accumulation_dtype(device)
        first: Tensor | None = None
        second: Tensor | None = None
        noise_sample, noise = -1, inputs
        # A stochastic explainer's draws may depend on which images share a call: give it exactly one
        # sample's B images per call (it streams its own passes with its own batch_size).
        pieces = list(_pieces(self.n * batch, batch if stochastic else chunk, batch if stochastic else None))
        for start, stop in progress_bar(pieces, len(pieces), self.progress, type(self).__name__):
            runs = segments(start, stop, batch)
            parts = []
            for _, sample, cols in runs:
                if sample != noise_sample:
                    noise_sample = sample
                    noise_gen = torch.Generator(device=device).manual_seed(seeds[sample][0])
                    noise = torch.randn(inputs.shape, generator=noise_gen, device=device, dtype=inputs.dtype)
                parts.append(torch.addcmul(inputs[cols], scale[cols], noise[cols]))
            noisy = parts[0] if len(parts) == 1 else torch.cat(parts)
            image = torch.cat([torch.arange(batch, device=device)[cols] for _, _, cols in runs])
            child = None
            if stochastic:
                child = torch.Generator(device=device).manual_seed(seeds[runs[0][1]][1])
            with pixel_range(None):  # noisy samples leave [0, 1] by design; the inputs were checked above
                maps = call_explainer(self.explainer, noisy, target[image], child)
            _check_maps(maps, noisy, self.explainer)
            maps = maps.detach().to(acc_dtype)
            if first is None or second is None:
                first = torch.zeros((batch, *maps.shape[1:]), dtype=acc_dtype, device=device)
                second = torch.zeros_like(first)
            for rows, _, cols in runs:
                first[cols] += maps[rows]
                second[cols] += maps[rows].square()
        assert first is not None and second is not None
        return first / self.n, second / self.n


def _pieces(total: int, chunk: int, split_every: int | None):
    """``[start, stop)`` ranges of at most ``chunk`` items; also cut at multiples of ``split_every``."""
    start = 0
    while start < total:
        stop = min(start + chunk, total)
        if split_every is not None:
            stop = min(stop, (start // split_every + 1) * split_every)
        yield start, stop
        start = stop


def _check_maps(maps: object, noisy: Tensor, explainer: object) -> None:
    if not isinstance(maps, Tensor) or maps.dim() != 4 or maps.shape[0] != noisy.shape[0]:
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(f"{explainer!r} returned {shape} for {noisy.shape[0]} images; expected B×C×H×W maps")


class SmoothGrad(NoiseTunnel):
    """SmoothGrad (Smilkov et al. 2017): mean of the maps of ``n`` noisy copies."""

    name = "smoothgrad"

    def _statistic(self, first: Tensor, second: Tensor) -> Tensor:
        return first


class SmoothGradSq(NoiseTunnel):
    """SmoothGrad²: mean of the squared maps of ``n`` noisy copies (≥ SmoothGrad² elementwise)."""

    name = "smoothgrad_sq"

    def _statistic(self, first: Tensor, second: Tensor) -> Tensor:
        return second


class VarGrad(NoiseTunnel):
    """VarGrad (Adebayo et al. 2018): variance of the maps of ``n`` noisy copies.

    Biased (population, ÷ n) by default, so ``VarGrad = SmoothGrad² − SmoothGrad²``.

    Args:
        explainer, n, noise_level, sigma, batch_size, generator, progress: as :class:`NoiseTunnel`.
        unbiased: divide by ``n − 1`` instead of ``n`` (needs ``n ≥ 2``).

    Raises:
        ValueError: as :class:`NoiseTunnel`, or ``unbiased=True`` with ``n < 2``.
    """

    name = "vargrad"

    @forwards_options(NoiseTunnel.__init__)
    def __init__(self, explainer: object, n: int = 50, *, unbiased: bool = False, **options: Any) -> None:
        super().__init__(explainer, n, **options)
        if unbiased and n < 2:
            raise ValueError("VarGrad(unbiased=True) needs n >= 2 samples")
        self.unbiased = bool(unbiased)

    def _statistic(self, first: Tensor, second: Tensor) -> Tensor:
        variance = (second - first * first).clamp_(min=0)
        return variance * (self.n / (self.n - 1)) if self.unbiased else variance
