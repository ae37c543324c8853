"""Attribution shift between a natural and a robust model (seed 003, Fig 1): the Occluded-Frequency
profile of each class under both models, and the share of (positive) attribution in the low bands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from freqlens.utils.signatures import forwards_options

from .occluded_frequency import low_band_share, occluded_frequency


@dataclass
class AttributionShift:
    """Per-class mean Occluded-Frequency profiles of two models and their low-band shares.

    Attributes:
        cutoff: the bands ``< cutoff`` are the low bands of the shares.
        natural: class → mean profile ``Tensor[H+W−1]`` under the natural model.
        robust: class → mean profile ``Tensor[H+W−1]`` under the robust model.
        natural_low_share: class → share of the positive attribution in the bands ``< cutoff``
            (:func:`~freqlens.analysis.occluded_frequency.low_band_share`), natural model.
        robust_low_share: the same for the robust model.
    """

    cutoff: int
    natural: dict[int, Tensor]
    robust: dict[int, Tensor]
    natural_low_share: dict[int, float]
    robust_low_share: dict[int, float]

    def to_dict(self, class_names: list[str] | None = None) -> dict:
        name = (lambda c: class_names[c]) if class_names else str
        return {
            "cutoff": self.cutoff,
            "classes": {
                name(c): {
                    "natural_profile": self.natural[c].tolist(),
                    "robust_profile": self.robust[c].tolist(),
                    "natural_low_band_share": self.natural_low_share[c],
                    "robust_low_band_share": self.robust_low_share[c],
                }
                for c in sorted(self.natural)
            },
            "mean_natural_low_band_share": sum(self.natural_low_share.values()) / len(self.natural_low_share),
            "mean_robust_low_band_share": sum(self.robust_low_share.values()) / len(self.robust_low_share),
        }


@forwards_options(occluded_frequency, skip=("model", "inputs", "target", "per_coefficient"))
def attribution_shift(natural: nn.Module, robust: nn.Module, inputs: Tensor, labels: Tensor, cutoff: int | None = None,
                      **options: Any) -> AttributionShift:
    """Occluded Frequency of ``inputs`` for their ``labels`` under both models, averaged per class.

    Args:
        natural: the naturally trained classifier.
        robust: the robust (e.g. adversarially trained) classifier.
        inputs: images ``B×C×H×W``.
        labels: the classes ``LongTensor[B]``; each image is explained for its own label.
        cutoff: splits low (bands ``< cutoff``) from high bands for the low-band share, in
            ``[1, H+W−2]`` (``None``: ``(H+W−1)//4``).
        baseline, batch_size, generator, score, progress: as :func:`occluded_frequency` (called once per
            model, on the bands).

    Returns:
        The per-class profiles and low-band shares of both models, as :class:`AttributionShift`.

    Raises:
        ValueError: ``cutoff`` out of range.
    """
    bands = inputs.shape[-2] + inputs.shape[-1] - 1
    cutoff = bands // 4 if cutoff is None else int(cutoff)
    if not 0 < cutoff < bands:
        raise ValueError(f"cutoff must lie in [1, {bands - 1}], got {cutoff}")
    profiles = {}
    for key, model in (("natural", natural), ("robust", robust)):
        scores = occluded_frequency(model, inputs, labels, per_coefficient=False, **options)
        profiles[key] = {int(c): scores[labels == c].mean(dim=0) for c in labels.unique().tolist()}
    return AttributionShift(
        cutoff=cutoff,
        natural=profiles["natural"],
        robust=profiles["robust"],
        natural_low_share={c: float(low_band_share(p, cutoff)) for c, p in profiles["natural"].items()},
        robust_low_share={c: float(low_band_share(p, cutoff)) for c, p in profiles["robust"].items()},
    )
