"""Modulational and noise-modulation training (seed 000, Definitions 1 and 2).

Each training image ``x`` (one sample, ``N = C·H·W`` values) is multiplied by the squared carrier
``c`` (same shape as the sample), rescaled so that the carrier's constant component is kept::

    x* = x · N · c² / C0,    C0 = Σₙ cₙ²    (sum over one sample's C×H×W values)

so the per-sample mean of the multiplier ``N·c²/C0`` is exactly 1. ``x*`` is what the optimiser step
sees; it may leave [0, 1] — that is the method (the network learns to filter the carrier out), not a
bug. Noise modulation uses the carrier ``c = β + (1 − β)·δ`` with a fresh noise ``δ`` per sample and
per step; ``β = 1`` is standard training (``x`` is returned unchanged, bit for bit).

Noises (seed 000, §3.4 parameters): ``gaussian`` N(0, 1), ``uniform`` U[0, 1], ``laplace`` (location 0,
scale 1), ``gamma`` (shape 1, scale 1; the same law as Exp(1)), ``exponential`` (scale 1), ``rayleigh``
(scale 1). All are drawn from the ``generator`` with ``torch.randn``/``torch.rand`` and inverse-CDF
transforms (``torch.distributions`` take no generator).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from freqlens.training.augment import TrainingConfigError

#: ``carrier(shape, generator, device, dtype) -> Tensor`` of ``shape`` (``B×C×H×W``, the batch's shape).
Carrier = Callable[[torch.Size, "torch.Generator | None", torch.device, torch.dtype], Tensor]


def _uniform(shape: torch.Size, generator: torch.Generator | None, device: torch.device,
             dtype: torch.dtype) -> Tensor:
    return torch.rand(shape, generator=generator, device=device, dtype=dtype)


def _exponential(shape: torch.Size, generator: torch.Generator | None, device: torch.device,
                 dtype: torch.dtype) -> Tensor:
    # inverse CDF of Exp(1): −log(1 − U), U ∈ [0, 1) so the argument of the log is in (0, 1]: finite
    return -torch.log1p(-_uniform(shape, generator, device, dtype))


def _gaussian(shape: torch.Size, generator: torch.Generator | None, device: torch.device,
              dtype: torch.dtype) -> Tensor:
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def _laplace(shape: torch.Size, generator: torch.Generator | None, device: torch.device,
             dtype: torch.dtype) -> Tensor:
    # Laplace(0, 1) is the difference of two independent Exp(1) variables (finite, no sign(0) edge case)
    return _exponential(shape, generator, device, dtype) - _exponential(shape, generator, device, dtype)


def _gamma(shape: torch.Size, generator: torch.Generator | None, device: torch.device,
           dtype: torch.dtype) -> Tensor:
    # Gamma(shape 1, scale 1) (the seed's setting) is exactly Exp(1)
    return _exponential(shape, generator, device, dtype)


def _rayleigh(shape: torch.Size, generator: torch.Generator | None, device: torch.device,
              dtype: torch.dtype) -> Tensor:
    # inverse CDF of Rayleigh(σ = 1): sqrt(−2 log(1 − U)) = sqrt(2·Exp(1))
    return torch.sqrt(2.0 * _exponential(shape, generator, device, dtype))


#: The noises of seed 000 §3.4: name → sampler ``(shape, generator, device, dtype) -> Tensor``.
NOISES: dict[str, Carrier] = {
    "gaussian": _gaussian,
    "uniform": _uniform,
    "laplace": _laplace,
    "gamma": _gamma,
    "exponential": _exponential,
    "rayleigh": _rayleigh,
}


def sample_noise(noise: str, shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """A tensor of ``shape`` with i.i.d. values of the named noise (see :data:`NOISES`).

    Args:
        noise: a name of :data:`NOISES`.
        shape: the tensor's shape.
        generator: the random source (``None``: torch's global RNG).
        device: the tensor's device.
        dtype: the tensor's dtype.

    Returns:
        The noise tensor.

    Raises:
        TrainingConfigError: an unknown ``noise``.
    """
    if noise not in NOISES:
        raise TrainingConfigError(f"unknown noise {noise!r}; choose one of {', '.join(NOISES)}")
    return NOISES[noise](torch.Size(shape), generator, torch.device(device), dtype)


def modulate(x: Tensor, carrier: Tensor) -> Tensor:
    """``x · N · c² / Σc²`` per sample (Definition 1).

    Args:
        x: the batch ``B×…`` (``N`` values per sample).
        carrier: the carrier ``c``, ``B×…`` of the shape of ``x``.

    Returns:
        The modulated batch, the shape of ``x``.

    Raises:
        TrainingConfigError: if the shapes differ, the carrier is not finite, or one sample's carrier is
            all zeros (the definition needs ``c ≠ 0``).
    """
    if carrier.shape != x.shape:
        raise TrainingConfigError(f"the carrier has shape {tuple(carrier.shape)}, the batch {tuple(x.shape)}; "
                                  "they must be equal")
    power = carrier.to(x.dtype).square()
    mean_power = power.flatten(1).mean(dim=1)  # C0 / N per sample
    if not bool(torch.isfinite(mean_power).all()):
        raise TrainingConfigError("the carrier has non-finite values")
    if bool((mean_power == 0).any()):
        raise TrainingConfigError("the carrier is all zeros for some sample; modulation needs c ≠ 0")
    return x * (power / mean_power.view(-1, *([1] * (x.dim() - 1))))


def _check_batch(x: Tensor) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2:
        got = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise TrainingConfigError(f"modulation needs a float batch B×C×H×W, got {got}")


class Modulational:
    """Modulational training (seed 000, Definition 1) with any carrier.

    ``carrier(shape, generator, device, dtype) -> Tensor``: called once per batch with the batch's
    ``shape`` (``B×C×H×W``), the loop's ``generator`` (draw all randomness from it), device and dtype;
    returns the carrier, one per sample, of that shape. A constant carrier is standard training.
    """

    name = "modulational"

    def __init__(self, carrier: Carrier) -> None:
        if not callable(carrier):
            raise TrainingConfigError(f"carrier must be callable (shape, generator, device, dtype) -> Tensor, "
                                      f"got {type(carrier).__name__}")
        self.carrier = carrier

    def transform(self, model: nn.Module, x: Tensor, y: Tensor,
                  generator: torch.Generator | None = None) -> Tensor:
        """``x`` modulated by a fresh carrier (:func:`modulate`).

        Args:
            model: the model being trained (unused).
            x: the clean batch ``B×C×H×W`` float.
            y: the labels (unused).
            generator: passed to the carrier callable.

        Returns:
            The modulated batch, the shape of ``x``.

        Raises:
            TrainingConfigError: ``x`` is not a float batch, or a bad carrier.
        """
        _check_batch(x)
        carrier = self.carrier(x.shape, generator, x.device, x.dtype)
        if not isinstance(carrier, Tensor):
            raise TrainingConfigError(f"the carrier callable returned {type(carrier).__name__}, not a Tensor")
        return modulate(x, carrier.to(x.device))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "carrier": self.carrier}

    def __repr__(self) -> str:
        return f"Modulational(carrier={self.carrier!r})"


class NoiseModulation(Modulational):
    """Noise-modulation training (seed 000, Definition 2): modulational training with the carrier
    ``c = β + (1 − β)·δ`` (:meth:`carrier`); ``β = 1`` is standard training, exactly (the batch is returned
    as it is).

    Args:
        beta: ∈ [0, 1], the ratio of the constant component (seed: 0.5 for the best interpretability,
            0.8 for a basically interpretable model with little accuracy loss; 1 = standard training).
        noise: one of :data:`NOISES` (default ``"gaussian"``, the seed's choice).

    Raises:
        TrainingConfigError: ``beta`` outside [0, 1] or an unknown ``noise``.
    """

    name = "noise-modulation"

    def __init__(self, beta: float = 0.5, noise: str = "gaussian") -> None:
        # no Modulational.__init__: the carrier is the method carrier()
        try:
            beta = float(beta)
        except (TypeError, ValueError):
            raise TrainingConfigError(f"beta must be a number in [0, 1], got {beta!r}") from None
        if not 0.0 <= beta <= 1.0:
            raise TrainingConfigError(f"beta must be in [0, 1], got {beta}")
        if noise not in NOISES:
            raise TrainingConfigError(f"unknown noise {noise!r}; choose one of {', '.join(NOISES)}")
        self.beta = beta
        self.noise = noise

    def carrier(self, shape: torch.Size, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        """A fresh carrier ``β + (1 − β)·δ`` of ``shape``.

        Args:
            shape: the carrier's shape (the batch's).
            generator: the random source of ``δ`` (``None``: torch's global RNG).
            device: the carrier's device.
            dtype: the carrier's dtype.

        Returns:
            The carrier.
        """
        delta = sample_noise(self.noise, shape, generator, device, dtype)
        return self.beta + (1.0 - self.beta) * delta

    def transform(self, model: nn.Module, x: Tensor, y: Tensor,
                  generator: torch.Generator | None = None) -> Tensor:
        if self.beta == 1.0:
            return x  # c ≡ 1: standard training, exactly
        return super().transform(model, x, y, generator)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "beta": self.beta, "noise": self.noise}

    def __repr__(self) -> str:
        return f"NoiseModulation(beta={self.beta}, noise={self.noise!r})"


__all__ = ["NOISES", "Carrier", "Modulational", "NoiseModulation", "modulate", "sample_noise"]
