"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko, BMVC 2018).

``n_masks`` random binary ``grid×grid`` grids (each cell kept with probability ``p``) are upsampled
bilinearly to ``(grid+1)·cell`` pixels (``cell = ceil(H/grid)``) and cropped at a random shift in
``[0, cell)``, giving smooth masks ``M_i`` in ``[0, 1]``. The saliency of a pixel is the Monte-Carlo
estimate of ``E[f_c(x ⊙ M) · M] / p``::

    S = 1 / (n_masks · p) · Σ_i f_c(x ⊙ M_i) M_i

(normalised by ``n_masks · p``, the expected mask sum, as in the paper; not by the observed sum of
masks). ``f_c`` is the softmax probability of the target class by default (the paper), or its logit.

Defaults that follow the image size: ``n_masks=None`` is :data:`rise_masks` of the input, ``8000 ·
32² / (H·W)`` clamped to [500, 8000] (8,000 masks up to 32×32 px, as seed 001; 2,000 at 64 px; 500 from
128 px on, e.g. at 224 px instead of 8,000), so the cost per image stays bounded; the grid is already
relative to the image (``grid`` cells per side whatever ``H``: the paper's ``s = 7`` at 224 px).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from freqlens.attribution.base import Call, Explainer, Family, PassCount, accumulation_dtype, check_score
from freqlens.attribution.occlusion import SizeScaledCount
from freqlens.utils.perturb import check_baseline, resolve_baseline, score_perturbations
from freqlens.utils.tensors import check_positive_int

#: The default number of RISE masks for ``height×width`` images (``rise_masks(H, W)``): 8,000 at 28 and
#: 32 px (seed 001: 8,000 forwards per image), 2,000 at 64 px, 500 at 128 px and 224 px.
rise_masks = SizeScaledCount(reference=8000, minimum=500)


def _generator_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    return fallback if generator is None else generator.device


class RISE(Explainer):
    """RISE saliency maps ``B×1×H×W``.

    The low-resolution grids (``n_masks×s×s`` bits) and shifts are drawn up-front; the full-resolution
    masks are built chunk by chunk, so memory does not grow with ``n_masks``.

    Args:
        model: classifier returning ``B×num_classes`` logits.
        n_masks: number of random masks; ``None`` (default): :data:`rise_masks` of the input size,
            ``min(8000, max(500, ⌊8000 · 32² / (H·W) + ½⌋))`` (seed 001 uses 8,000 at 32 px; 500 at 224 px).
        grid: side ``s`` of the low-resolution binary grid (paper: 7).
        p: probability that a grid cell is kept.
        score: ``"prob"`` (default, the paper), ``"logit"`` or ``"log_prob"``.
        baseline: value of the masked-out pixels (the paper: 0).
        batch_size: max masked images per forward pass (``None``: automatic, see ``_batching``).
        generator: ``torch.Generator`` for the masks; the same seed gives the same maps.
        progress: show a tqdm bar over the forward chunks.

    Raises:
        ValueError: a bad ``n_masks``, ``grid``, ``p`` (not in (0, 1]), ``score``, ``baseline`` or
            ``batch_size``.
    """

    per_channel = False
    family = Family.BLACK_BOX
    name = "rise"
    stochastic = True

    def __init__(
        self,
        model: nn.Module,
        n_masks: int | None = None,
        grid: int = 7,
        p: float = 0.5,
        score: str = "prob",
        baseline: float | Tensor = 0.0,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(model, batch_size=batch_size, progress=progress, generator=generator)
        self.n_masks = None if n_masks is None else check_positive_int("n_masks", n_masks)
        self.grid = check_positive_int("grid", grid)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise ValueError(f"p must be a probability in (0, 1], got {p!r}")
        self.p = float(p)
        self.score = check_score(score)
        self.baseline = check_baseline(baseline)

    def masks_for_size(self, height: int, width: int) -> int:
        """The number of masks on ``height×width`` images: ``n_masks``, or :data:`rise_masks` when ``None``.

        Args:
            height, width: the image size in pixels.
        """
        return rise_masks(height, width) if self.n_masks is None else self.n_masks

    def planned_passes(self, height: int, width: int) -> PassCount:
        """``n_masks`` forward passes per image (one more to predict the target when it is not given).

        Args:
            height: image height in pixels.
            width: image width in pixels.
        """
        return PassCount(forward=self.masks_for_size(height, width), backward=0)

    def _draw(self, height: int, width: int, device: torch.device,
              generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor, int, int]:
        """Low-resolution grids ``n×s×s`` and the shifts ``n`` (rows, cols) drawn from ``generator``, on ``device``."""
        gen_device = _generator_device(generator, device)
        cell_h, cell_w = math.ceil(height / self.grid), math.ceil(width / self.grid)
        n_masks = self.masks_for_size(height, width)
        size = (n_masks, self.grid, self.grid)
        grids = torch.rand(size, generator=generator, device=gen_device) < self.p
        shift_h = torch.randint(0, cell_h, (n_masks,), generator=generator, device=gen_device)
        shift_w = torch.randint(0, cell_w, (n_masks,), generator=generator, device=gen_device)
        return grids.to(device), shift_h.to(device), shift_w.to(device), cell_h, cell_w

    def masks(self, height: int, width: int, device: torch.device | str = "cpu",
              generator: torch.Generator | None = None) -> Tensor:
        """All masks at once (for inspection and tests; ``attribute`` streams them).

        Args:
            height: image height ``H`` in pixels.
            width: image width ``W`` in pixels.
            device: device of the masks.
            generator: the random stream the masks are drawn from (default: the explainer's own).

        Returns:
            ``n_masks×1×H×W`` masks in [0, 1].
        """
        device = torch.device(device)
        maker = self._mask_maker(height, width, device, self.generator if generator is None else generator)
        return maker(torch.arange(self.masks_for_size(height, width), device=device))

    def _mask_maker(self, height: int, width: int, device: torch.device, generator: torch.Generator | None):
        grids, shift_h, shift_w, cell_h, cell_w = self._draw(height, width, device, generator)
        up = ((self.grid + 1) * cell_h, (self.grid + 1) * cell_w)
        rows = torch.arange(height, device=device)
        cols = torch.arange(width, device=device)

        def masks_for(ids: Tensor) -> Tensor:
            low = grids[ids][:, None].float()
            big = F.interpolate(low, size=up, mode="bilinear", align_corners=False)[:, 0]
            r = (shift_h[ids][:, None] + rows[None, :])[:, :, None]
            c = (shift_w[ids][:, None] + cols[None, :])[:, None, :]
            k = torch.arange(ids.shape[0], device=device)[:, None, None]
            return big[k, r, c][:, None]

        return masks_for

    def _attribute(self, call: Call) -> Tensor:
        inputs = call.inputs
        batch, _, height, width = inputs.shape
        masks_for = self._mask_maker(height, width, inputs.device, call.generator)
        saliency = torch.zeros(batch, height * width, dtype=accumulation_dtype(inputs.device), device=inputs.device)

        def accumulate(images: Tensor, scores: Tensor, masks: Tensor) -> None:
            # images of a chunk form a contiguous run: one (span×k) @ (k×HW) product per chunk
            first, last = int(images[0]), int(images[-1])
            weights = saliency.new_zeros(last - first + 1, scores.shape[0])
            weights[images - first, torch.arange(scores.shape[0], device=scores.device)] = scores.to(saliency.dtype)
            saliency[first : last + 1] += weights @ masks.reshape(masks.shape[0], -1).to(saliency.dtype)

        n_masks = self.masks_for_size(height, width)
        score_perturbations(
            self.model, inputs, resolve_baseline(self.baseline, inputs), call.target, n_masks,
            lambda images, ids: masks_for(ids), self.score, call.chunk, on_chunk=accumulate, progress=self.progress,
            desc="RISE",
        )
        return (saliency / (n_masks * self.p)).to(inputs.dtype).view(batch, 1, height, width)
