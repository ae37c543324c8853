"""Control maps: "explanations" that know nothing about the image or the model, to calibrate what a
faithfulness score means on a dataset.

:class:`CentrePrior` is the same centred Gaussian blob for every image. On datasets whose objects sit in the
middle (CIFAR-10) it scores well in Deletion / Insertion without looking at the model: a method (or a FORGrad
cutoff) that does not beat it measures the dataset's centre bias as much as the model's reasoning. It is a
control, not an explanation: not in the method registry, ``family = "control"``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from freqlens.attribution.base import Explainer, Family, PassCount
from freqlens.utils.tensors import check_images


class CentrePrior(Explainer):
    """A centred isotropic Gaussian ``exp(−r² / (2 s²))``, ``r`` the distance to the image centre
    ``((H − 1)/2, (W − 1)/2)`` in pixels, ``s = std_fraction · min(H, W)`` (8 px at 32 × 32), the same
    ``B×1×H×W`` map for every image; the model is never called (``planned_passes`` = 0).

    Args:
        model: the classifier (kept for the explainer protocol; unused).
        std_fraction: the blob's standard deviation as a fraction of the shorter side (> 0).
    """

    per_channel = False
    family = Family.CONTROL
    name = "centre_prior"

    def __init__(self, model: nn.Module, std_fraction: float = 0.25) -> None:
        super().__init__(model)
        if isinstance(std_fraction, bool) or not isinstance(std_fraction, (int, float)) or not std_fraction > 0:
            raise ValueError(f"std_fraction must be a positive number, got {std_fraction!r}")
        self.std_fraction = float(std_fraction)

    def attribute(
        self, inputs: Tensor, target: Tensor | int | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """The blob for every image of ``inputs``.

        No model pass, so the template's target resolution is skipped.

        Args:
            inputs: ``B×C×H×W`` images (checked; only their shape, dtype and device are used).
            target: ignored.
            generator: ignored.

        Returns:
            ``B×1×H×W`` in (0, 1] (maximum at the centre), dtype and device of ``inputs``.
        """
        batch, _, height, width = check_images(inputs).shape
        dtype = inputs.dtype if inputs.is_floating_point() else torch.float32
        rows = torch.arange(height, dtype=dtype, device=inputs.device) - (height - 1) / 2
        cols = torch.arange(width, dtype=dtype, device=inputs.device) - (width - 1) / 2
        std = self.std_fraction * min(height, width)
        blob = torch.exp(-(rows[:, None] ** 2 + cols[None, :] ** 2) / (2 * std**2))
        return blob.expand(batch, 1, height, width).clone()

    def planned_passes(self, height: int, width: int) -> PassCount:
        """No pass through the model.

        Args:
            height: image height in pixels (unused).
            width: image width in pixels (unused).

        Returns:
            ``PassCount(forward=0, backward=0)``.
        """
        return PassCount(forward=0, backward=0)
