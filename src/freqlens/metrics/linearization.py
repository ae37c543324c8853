"""Linearization-residual test of filtered gradients (seed 001, §3, Fig. 4).

``residual(σ, r) = E_(x, ε) |f(x + ε) − f(x) − ⟨ε, ∇^σ f(x)⟩|`` with ``f`` the target logit,
``∇^σ f = lowpass(∇_x f(x), σ)`` (the FORGrad filter of :func:`freqlens.spectral.lowpass`, σ in
cycles per image; σ ≥ Nyquist, ``inf`` or ``None`` = the unfiltered gradient) and ``ε`` uniform on
the L2 sphere of radius ``r`` in input space (normalised Gaussians). If the high frequencies of the
gradient carried information needed by the first-order model, filtering would raise the residual.

The ``n_dirs`` unit directions are drawn once (float64, on the generator's device, then cast) and
shared by every image, σ and r, so the result does not depend on ``batch_size``.

Reading the curves: the unfiltered residual of a smooth model is second order (``∝ r²``) while a
filtered gradient leaves a first-order term (``∝ r``), so filtered / unfiltered grows like ``1 / r`` at
small radii whatever the model, and an average over radii that include tiny ones cannot favour
filtering. :func:`linearization_curves` returns typed curves with the ratio per radius and
:meth:`LinearizationCurves.nonlinear_radii`, the radii where the model's own nonlinearity dominates
(unfiltered residual above a fraction, 10 % by default, of ``|f(x + ε) − f(x)|``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from freqlens.spectral import lowpass
from freqlens.utils.progress import progress_counter
from freqlens.utils.scores import input_gradient, select_score
from freqlens.utils.signatures import forwards_options
from freqlens.utils.tensors import (
    check_batch_size,
    check_images,
    check_model,
    chunks,
    eval_mode,
    resolve_target,
    result_dtype,
)

__all__ = ["LinearizationCurves", "NonlinearRadii", "linearization_curves", "linearization_residual", "unit_directions"]


def unit_directions(n_dirs: int, shape: Sequence[int], generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """``n_dirs`` directions uniform on the unit L2 sphere of ``R^prod(shape)``.

    Drawn as float64 Gaussians on the generator's device (CPU without a generator), normalised, then
    moved to ``dtype`` / ``device``.

    Args:
        n_dirs: number of directions (a positive int).
        shape: shape of one direction, e.g. ``(C, H, W)``.
        generator: source of the draws (``None``: the global CPU RNG).
        dtype: dtype of the result.
        device: device of the result (``None``: CPU).

    Returns:
        ``Tensor[n_dirs, *shape]``, each of unit L2 norm.

    Raises:
        ValueError: ``n_dirs`` is not a positive integer.
    """
    if isinstance(n_dirs, bool) or not isinstance(n_dirs, int) or n_dirs <= 0:
        raise ValueError(f"n_dirs must be a positive integer, got {n_dirs!r}")
    draw_device = generator.device if generator is not None else torch.device("cpu")
    gauss = torch.randn(n_dirs, *shape, generator=generator, dtype=torch.float64, device=draw_device)
    norms = gauss.flatten(1).norm(dim=1).clamp_min(torch.finfo(torch.float64).tiny)
    gauss = gauss / norms.reshape(-1, *([1] * len(shape)))
    return gauss.to(device=device, dtype=dtype)


def _check_values(values: object, name: str, allow_none: bool) -> list[float]:
    if isinstance(values, Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    elif values is None or isinstance(values, (int, float)):
        values = [values]
    try:
        values = list(values)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {type(values).__name__}") from None
    if not values:
        raise ValueError(f"{name} is empty")
    out = []
    for value in values:
        if value is None and allow_none:
            out.append(math.inf)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must hold numbers, got {value!r}")
        value = float(value)
        if math.isnan(value) or value < 0 or (not allow_none and math.isinf(value)):
            bound = "or inf/None" if allow_none else "and finite"
            raise ValueError(f"{name} must be >= 0 {bound}, got {value}")
        out.append(value)
    return out


def _residual_sums(
    model: nn.Module, inputs: Tensor, target: Tensor | int | None, sigma_list: list[float], radius_list: list[float],
    n_dirs: int, generator: torch.Generator | None, batch_size: int | None, shape: str, progress: bool,
) -> tuple[Tensor, Tensor]:
    """Sums over images and directions (float64, inputs' device) of ``|f(x + ε) − f(x) − ⟨ε, ∇^σ f(x)⟩|``
    → ``[S, R]`` and of ``|f(x + ε) − f(x)|`` → ``[R]``; the streaming core of the residual functions."""
    batch = inputs.shape[0]
    step = check_batch_size(batch_size) or batch
    device, dtype = inputs.device, result_dtype(inputs)  # half precision inputs: float32 arithmetic
    directions = unit_directions(n_dirs, inputs.shape[1:], generator, dtype=dtype, device=device)
    flat_dirs = directions.flatten(1)  # D×P
    radius_t = torch.tensor(radius_list, dtype=dtype, device=device)
    n_rad = len(radius_list)

    with eval_mode(model):
        target = resolve_target(model, inputs, target, batch_size=step)
        # f(x) and ⟨ε̂_d, ∇^σ f(x_b)⟩ for every σ, image and direction: S×B×D.
        base = torch.empty(batch, dtype=dtype, device=device)
        linear = torch.empty(len(sigma_list), batch, n_dirs, dtype=dtype, device=device)
        total_items = batch * n_dirs * n_rad
        with progress_counter(batch + total_items, "linearization", progress) as bar:
            for part in chunks(batch, step):
                grad, logits = input_gradient(model, inputs[part],
                                              lambda out, part=part: select_score(out, target[part], "logit"))
                base[part] = select_score(logits, target[part], "logit").to(dtype)
                filtered = lowpass(grad.to(dtype), sigma_list, shape=shape)  # S×b×C×H×W
                linear[:, part] = filtered.flatten(2) @ flat_dirs.T
                bar.update(part.stop - part.start)

            # Stream f(x_b + r_k ε̂_d) over the flat (image, direction, radius) index.
            sums = torch.zeros(len(sigma_list), n_rad, dtype=torch.float64, device=device)
            change = torch.zeros(n_rad, dtype=torch.float64, device=device)
            with torch.no_grad():
                for part in chunks(total_items, step):
                    index = torch.arange(part.start, part.stop, device=device)
                    image, rest = index // (n_dirs * n_rad), index % (n_dirs * n_rad)
                    direction, radius = rest // n_rad, rest % n_rad
                    r = radius_t[radius]
                    perturbed = (inputs[image] + r.reshape(-1, 1, 1, 1) * directions[direction]).to(inputs.dtype)
                    value = select_score(model(perturbed), target[image], "logit").to(dtype)
                    first_order = base[image] + r * linear[:, image, direction]  # S×n
                    sums.index_add_(1, radius, (value - first_order).abs().to(torch.float64))
                    change.index_add_(0, radius, (value - base[image]).abs().to(torch.float64))
                    bar.update(part.stop - part.start)
    return sums, change


@dataclass(frozen=True)
class NonlinearRadii:
    """Radii where the model's own nonlinearity dominates (from the unfiltered curve), see
    :meth:`LinearizationCurves.nonlinear_radii`.

    Attributes:
        fraction: the threshold: a radius is kept when the unfiltered residual exceeds ``fraction ×
            mean |f(x + ε) − f(x)|``.
        mask: ``BoolTensor[R]`` over all radii, ``True`` where kept.
        radii: the kept radii (increasing order of the input).
        relative: ``Tensor[R]``, unfiltered residual / mean ``|f(x + ε) − f(x)|`` at every radius (NaN
            where both are 0, e.g. r = 0).
        ratio: ``Tensor[S, K]``, filtered / unfiltered residual at the ``K`` kept radii.
    """

    fraction: float
    mask: Tensor
    radii: list[float]
    relative: Tensor
    ratio: Tensor

    def geometric_mean_ratio(self) -> Tensor:
        """``Tensor[S]``: geometric mean over the kept radii of filtered / unfiltered (NaN if none kept)."""
        if not self.radii:
            return torch.full((self.ratio.shape[0],), math.nan, dtype=self.ratio.dtype)
        return self.ratio.log().mean(dim=1).exp()


@dataclass(frozen=True)
class LinearizationCurves:
    """Result of :func:`linearization_curves` (S filtered cutoffs, R radii; means over images and directions).

    Attributes:
        sigmas: the cutoffs asked for (cycles per image; ``inf`` = unfiltered).
        radii: the radii of ``ε``.
        residual: ``Tensor[S, R]``, mean ``|f(x + ε) − f(x) − ⟨ε, ∇^σ f(x)⟩|`` (as
            :func:`linearization_residual`).
        unfiltered: ``Tensor[R]``, the same with the exact gradient (σ = ∞).
        change: ``Tensor[R]``, mean ``|f(x + ε) − f(x)|``.
        shape: the low-pass shape.
        n_images: images averaged over.
        n_dirs: random directions averaged over.

    For a smooth model the unfiltered residual is second order, ``∝ r²``, while a filtered gradient
    leaves a first-order term ``r·|⟨ε̂, ∇f − ∇^σ f⟩|``, ``∝ r``: at small radii the ratio
    filtered / unfiltered grows like ``1 / r`` whatever the model, so average it only over the radii
    where the model's nonlinearity matters (:meth:`nonlinear_radii`).
    """

    sigmas: list[float]
    radii: list[float]
    residual: Tensor
    unfiltered: Tensor
    change: Tensor
    shape: str
    n_images: int
    n_dirs: int

    @property
    def ratio(self) -> Tensor:
        """``Tensor[S, R]``: filtered / unfiltered residual per radius (NaN where both are 0, inf where
        only the unfiltered one is)."""
        return self.residual / self.unfiltered

    def nonlinear_radii(self, fraction: float = 0.1) -> NonlinearRadii:
        """The radii where the model's own nonlinearity dominates.

        Args:
            fraction: a radius is kept when the unfiltered residual exceeds ``fraction`` of the mean
                ``|f(x + ε) − f(x)|`` (both means over images and directions); ≥ 0.

        Returns:
            The kept radii with their masks and ratios.

        Raises:
            ValueError: ``fraction`` is not a number ≥ 0.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not fraction >= 0:
            raise ValueError(f"fraction must be a number >= 0, got {fraction!r}")
        mask = self.unfiltered > fraction * self.change
        kept = [r for r, keep in zip(self.radii, mask.tolist()) if keep]
        return NonlinearRadii(fraction=float(fraction), mask=mask, radii=kept,
                              relative=self.unfiltered / self.change, ratio=self.ratio[:, mask])


def linearization_curves(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    sigmas: Sequence[float | None] | Tensor | float | None,
    radii: Sequence[float] | Tensor | float,
    n_dirs: int = 100,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    shape: str = "box",
    progress: bool = False,
) -> LinearizationCurves:
    """Linearization residuals of σ-filtered gradients with their unfiltered reference (seed 001, Fig 4).

    Same arguments and the same residuals as :func:`linearization_residual` (same directions for the same
    generator), plus in one pass the unfiltered residual (σ = ∞) and ``|f(x + ε) − f(x)|``.

    Args:
        model, inputs, target, sigmas, radii: as :func:`linearization_residual`.
        n_dirs, generator, batch_size, shape, progress: as :func:`linearization_residual`.

    Returns:
        The curves; they expose the ratio filtered / unfiltered per radius and the radii where the model
            is nonlinear (:meth:`LinearizationCurves.nonlinear_radii`). Tensors are float64 on the CPU.

    Raises:
        TypeError: ``sigmas`` or ``radii`` do not hold numbers.
        ValueError: as :func:`linearization_residual`.
    """
    model = check_model(model)
    inputs = check_images(inputs)
    sigma_list = _check_values(sigmas, "sigmas", allow_none=True)
    radius_list = _check_values(radii, "radii", allow_none=False)
    sums, change = _residual_sums(model, inputs, target, [*sigma_list, math.inf], radius_list, n_dirs, generator,
                                  batch_size, shape, progress)
    count = inputs.shape[0] * n_dirs
    means = (sums / count).cpu()
    return LinearizationCurves(sigmas=sigma_list, radii=radius_list, residual=means[:-1], unfiltered=means[-1],
                               change=(change / count).cpu(), shape=shape, n_images=inputs.shape[0], n_dirs=n_dirs)


@forwards_options(linearization_curves)
def linearization_residual(model: nn.Module, inputs: Tensor, *args: Any, **options: Any) -> Tensor:
    """Mean linearization residual of the σ-filtered gradient.

    Memory: the ``n_dirs`` directions (``n_dirs × C×H×W``) and ``len(sigmas) × B × n_dirs`` inner
    products are kept; the ``B·n_dirs·len(radii)`` perturbed forward passes are streamed. See
    :func:`linearization_curves` for the residual relative to the unfiltered gradient and to
    ``|f(x + ε) − f(x)|``.

    Args:
        model: classifier returning logits ``[B, classes]`` (held in eval mode, flags restored).
        inputs: ``B×C×H×W`` floating images.
        target: classes (``LongTensor[B]``, an int, or ``None`` = predicted class); ``f`` = its logit.
        sigmas: low-pass cutoffs in cycles per image; ``None`` / ``inf`` / ≥ Nyquist = unfiltered
            (exactly: :func:`~freqlens.spectral.lowpass` is then the identity).
        radii: L2 radii ``r ≥ 0`` of the perturbations ``ε``.
        n_dirs: number of random directions (shared by all images, σ and r).
        generator: torch generator for the directions (same generator state → same result).
        batch_size: images per gradient pass and perturbed inputs per forward pass (default: the
            number of images, so memory does not grow with ``n_dirs`` × ``len(radii)``).
        shape: filter shape of :func:`freqlens.spectral.lowpass` (``box``, ``disk``, ``gaussian``).
        progress: show a tqdm bar on stderr.

    Returns:
        ``Tensor[len(sigmas), len(radii)]``, float64 for float64 inputs, float32 otherwise, on the
            inputs' device.

    Raises:
        TypeError: ``sigmas`` or ``radii`` do not hold numbers.
        ValueError: empty, negative or NaN ``sigmas`` / ``radii`` (or an infinite radius), or a bad
            ``n_dirs``.
    """
    curves = linearization_curves(model, inputs, *args, **options)
    return curves.residual.to(inputs.device, result_dtype(inputs))
