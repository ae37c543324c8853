"""Sobol attribution (Fel, Cadène, Chalvidal, Cord, Vigouroux & Serre, NeurIPS 2021,
"Look at the variance! Efficient black-box explanations with Sobol-based sensitivity analysis").

The image is cut into a ``grid×grid`` lattice of cells; each cell ``i`` is modulated by a real mask
value ``X_i ∈ [0, 1]`` (``"inpainting"``: ``x ⊙ M + b ⊙ (1 − M)`` for the baseline ``b``, ``"blur"``:
``x ⊙ M + blur(x) ⊙ (1 − M)`` with :func:`freqlens.utils.perturb.gaussian_blur`, i.e. the ``"blur"`` baseline; with
``M`` the nearest-neighbour upsampling of the cell values). Designs come from a scrambled Sobol
sequence in ``[0, 1]^{2d}`` (``d = grid²``, :class:`torch.quasirandom.SobolEngine` seeded from the
generator): the first ``d`` coordinates form matrix ``A``, the last ``d`` matrix ``B``, and
``C_i = A`` with column ``i`` taken from ``B``. With ``N = nb_design`` the cost is ``N·(d + 2)``
forwards per image. The **total** Sobol index of cell ``i`` uses the Jansen (1999) estimator::

    ST_i = Σ_j (f(A_j) − f(C_i,j))² / (2 N · V),   V = unbiased variance of f over the 2N points of A and B

The ``grid×grid`` indices are upsampled bilinearly to ``H×W``: ``B×1×H×W`` maps.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.attribution.base import Call, Explainer, Family, PassCount, check_images, check_score
from freqlens.attribution.occlusion import SizeScaledCount
from freqlens.utils.perturb import check_baseline, check_blur_sigma, resolve_baseline, score_perturbations
from freqlens.utils.seeding import seed_from
from freqlens.utils.signatures import forwards_options
from freqlens.utils.tensors import check_positive_int

PERTURBATIONS = ("inpainting", "blur")


def _check_grid(grid: int, height: int, width: int) -> None:
    if grid > min(height, width):
        raise ValueError(f"grid={grid} has more cells than the image has pixels per side ({height}×{width})")


def _upsample_cells(cells: Tensor, height: int, width: int) -> Tensor:
    """``k×d`` cell values (``d = g²``) -> ``k×1×H×W`` piecewise-constant masks (nearest neighbour)."""
    grid = math.isqrt(cells.shape[1])
    return F.interpolate(cells.view(-1, 1, grid, grid), size=(height, width), mode="nearest")


def _cells_to_map(values: Tensor, height: int, width: int) -> Tensor:
    """``B×d`` per-cell scores -> ``B×1×H×W`` maps, upsampled bilinearly."""
    grid = math.isqrt(values.shape[1])
    return F.interpolate(values.view(-1, 1, grid, grid), size=(height, width), mode="bilinear", align_corners=False)


def sobol_designs(grid: int, nb_design: int, generator: torch.Generator | None = None) -> Tensor:
    """The design matrix ``[A; B; C_1; …; C_d]`` (``d = grid²``) in ``[0, 1]``.

    Args:
        grid: cells per side.
        nb_design: ``N``, quasi-Monte-Carlo points per matrix.
        generator: seeds the scrambling of the Sobol sequence (``None``: the global RNG).

    Returns:
        ``N·(d+2)×d`` float32 designs.
    """
    dim = grid * grid
    engine = torch.quasirandom.SobolEngine(2 * dim, scramble=True, seed=seed_from(generator))
    points = engine.draw(nb_design, dtype=torch.float64)
    a, b = points[:, :dim], points[:, dim:]
    # C[i] = A with column i replaced by B's column i, stacked as d blocks of N rows
    eye = torch.eye(dim, dtype=torch.bool)
    c = torch.where(eye[:, None, :], b[None], a[None]).reshape(dim * nb_design, dim)
    return torch.cat([a, b, c]).float()


def jansen_total_indices(scores: Tensor, nb_design: int, eps: float = 1e-12) -> Tensor:
    """Total Sobol indices (Jansen 1999 estimator) from the scores of the designs.

    Args:
        scores: ``B×N(d+2)`` scores, ordered as :func:`sobol_designs`.
        nb_design: ``N``.
        eps: floor of the variance ``V`` (a constant score gives indices 0, not NaN).

    Returns:
        ``B×d`` total indices.
    """
    batch, total = scores.shape
    dim = total // nb_design - 2
    f_a = scores[:, :nb_design]
    f_ab = scores[:, : 2 * nb_design]
    f_c = scores[:, 2 * nb_design :].reshape(batch, dim, nb_design)
    variance = f_ab.var(dim=1, unbiased=True).clamp_min(eps)
    return ((f_a[:, None, :] - f_c) ** 2).sum(dim=2) / (2 * nb_design * variance[:, None])


class CellMaskExplainer(Explainer):
    """Template of the black-box methods that perturb a ``grid×grid`` lattice of cells with mask designs.

    Used by Sobol and HSIC: subclasses give :meth:`designs` (``N×grid×grid`` cell values in [0, 1] for
    ``H×W`` images) and :meth:`estimate` (``B×N`` scores → ``B×grid×grid`` cell importances); the
    forwards of the ``B×N`` perturbed images are streamed in chunks of ``batch_size``.

    Args:
        model: classifier returning ``B×num_classes`` logits.
        grid: cells per side (a positive int).
        nb_design: number of designs ``N`` (a positive int); ``None`` lets a subclass choose it from the
            input size (:meth:`designs_for_size`).
        perturbation: ``"inpainting"`` (masked pixels go to ``baseline``) or ``"blur"``.
        baseline: value of masked pixels for inpainting (number or broadcastable tensor).
        blur_sigma: Gaussian blur std in pixels for ``"blur"`` (``None`` = min(H, W)/16, the one blur of
            :func:`freqlens.utils.perturb.gaussian_blur`: the ``"blur"`` baseline).
        score: ``"logit"`` (default), ``"prob"`` or ``"log_prob"``.
        batch_size: max perturbed images per forward pass (``None``: automatic).
        generator: the random stream of the designs.
        progress: show a tqdm bar over the forward chunks.

    Raises:
        ValueError: a bad ``grid``, ``nb_design``, ``perturbation``, ``baseline``, ``blur_sigma``,
            ``score`` or ``batch_size``.
    """

    per_channel = False
    family = Family.BLACK_BOX
    stochastic = True
    #: label of the progress bar
    bar_label = "cells"
    #: the number of designs when ``nb_design`` is ``None`` (``None``: the subclass needs an explicit one)
    default_designs: SizeScaledCount | None = None

    def __init__(
        self,
        model: nn.Module,
        grid: int,
        nb_design: int | None,
        perturbation: str = "inpainting",
        baseline: float | Tensor = 0.0,
        blur_sigma: float | None = None,
        score: str = "logit",
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(model, batch_size=batch_size, progress=progress, generator=generator)
        self.grid = check_positive_int("grid", grid)
        self.nb_design = None if nb_design is None else check_positive_int("nb_design", nb_design)
        if perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {perturbation!r}")
        self.perturbation = perturbation
        self.baseline = check_baseline(baseline)
        self.blur_sigma = check_blur_sigma(blur_sigma)
        self.score = check_score(score)

    def designs_for_size(self, height: int, width: int) -> int:
        """``N`` on ``height×width`` images: ``nb_design``, or when ``None`` the class's
        :attr:`default_designs` of the size.

        Args:
            height, width: the image size in pixels.

        Raises:
            ValueError: ``nb_design`` is ``None`` and the class has no ``default_designs``.
        """
        if self.nb_design is not None:
            return self.nb_design
        if self.default_designs is None:
            raise ValueError(f"{type(self).__name__} needs an explicit nb_design")
        return self.default_designs(height, width)

    def perturbations(self, height: int, width: int) -> int:
        """Perturbed images per explained image (rows of :meth:`designs`).

        Args:
            height: image height in pixels.
            width: image width in pixels.
        """
        return self.designs_for_size(height, width)

    def planned_passes(self, height: int, width: int) -> PassCount:
        """:meth:`perturbations` forward passes per image (one more to predict the target when not given).

        Args:
            height: image height in pixels.
            width: image width in pixels.
        """
        return PassCount(forward=self.perturbations(height, width), backward=0)

    def designs(self, height: int, width: int, generator: torch.Generator | None = None) -> Tensor:
        """Cell values of the designs for ``height×width`` images.

        Args:
            height: image height in pixels.
            width: image width in pixels.
            generator: the random stream the designs are drawn from.

        Returns:
            ``N×grid²`` cell values in [0, 1].
        """
        raise NotImplementedError

    def estimate(self, designs: Tensor, scores: Tensor) -> Tensor:
        """Cell importances from the scores of the designs.

        Args:
            designs: the ``N×grid²`` designs of :meth:`designs`.
            scores: ``B×N`` scores of the designs.

        Returns:
            ``B×grid²`` cell importances.
        """
        raise NotImplementedError

    def attribute(
        self, inputs: Tensor, target: Tensor | int | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        _check_grid(self.grid, *check_images(inputs).shape[-2:])  # before any model pass
        return super().attribute(inputs, target, generator=generator)

    def _attribute(self, call: Call) -> Tensor:
        inputs = call.inputs
        height, width = inputs.shape[-2:]
        designs = self.designs(height, width, call.generator).to(inputs.device)
        baseline = "blur" if self.perturbation == "blur" else self.baseline
        scores = score_perturbations(
            self.model, inputs, resolve_baseline(baseline, inputs, self.blur_sigma), call.target, designs.shape[0],
            lambda images, ids: _upsample_cells(designs[ids], height, width), self.score, call.chunk,
            progress=self.progress, desc=self.bar_label,
        )
        return _cells_to_map(self.estimate(designs, scores), height, width)


class SobolAttribution(CellMaskExplainer):
    """Total Sobol indices of ``grid×grid`` image cells (Fel et al. 2021), ``B×1×H×W``.

    Costs ``N·(grid² + 2)`` forwards per image: 2,112 with the defaults (``grid=8``, ``N=32``, those of
    Fel et al. and Xplique) at every image size. The Jansen estimator needs the ``d + 2`` blocks of ``N``
    designs for its ``d = grid²`` indices, so this is not scaled with the image (fewer cells would
    coarsen the map, fewer designs break the quasi-Monte-Carlo balance).

    Args:
        model: classifier returning ``B×num_classes`` logits.
        grid: cells per side (``d = grid²`` variables).
        nb_design: ``N``, quasi-Monte-Carlo points per matrix (a power of two keeps Sobol balance).
        generator: seeds the scrambling of the Sobol sequence (same seed, same maps).
        perturbation, baseline, blur_sigma, score, batch_size, progress: as :class:`CellMaskExplainer`.
    """

    name = "sobol"
    bar_label = "Sobol"

    @forwards_options(CellMaskExplainer.__init__)
    def __init__(self, model: nn.Module, grid: int = 8, nb_design: int = 32, **options: Any) -> None:
        super().__init__(model, grid, nb_design, **options)

    def perturbations(self, height: int, width: int) -> int:
        return self.designs_for_size(height, width) * (self.grid * self.grid + 2)

    def designs(self, height: int, width: int, generator: torch.Generator | None = None) -> Tensor:
        return sobol_designs(self.grid, self.designs_for_size(height, width), generator)

    def estimate(self, designs: Tensor, scores: Tensor) -> Tensor:
        return jansen_total_indices(scores, designs.shape[0] // (self.grid * self.grid + 2))
