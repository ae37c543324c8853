"""DCT footprint of adversarial perturbations (seed 003, Fig. 2): for each attack the adversarial
images, the RCT map (:func:`freqlens.spectral.rct`), its high-band ÷ low-band ratio and the robust
accuracy.

High/low ratio: ``mean(RCT[i + j ≥ high_band]) / mean(RCT[i + j < high_band])`` over the DCT
coefficients of an ``H×W`` image; the default ``high_band = (H + W − 1) // 2`` splits the ``H + W − 1``
anti-diagonal bands in two halves. > 1: the attack changes high frequencies relatively more.

The figure is drawn by :func:`freqlens.report.save_rct_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from torch import Tensor, nn

from freqlens.attacks import run_attack
from freqlens.attacks.base import check_images
from freqlens.spectral import dct_bands, rct

__all__ = ["AttackSpectra", "AttackSpectrum", "attack_spectra", "high_low_ratio"]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class AttackSpectrum:
    """One attack's outcome.

    Attributes:
        name: the attack's name (the key in :class:`AttackSpectra`).
        adversarial: the adversarial images ``B×C×H×W`` in [0, 1].
        rct: the RCT map ``[H, W]`` (:func:`freqlens.spectral.rct`; top-left = DC).
        high_low_ratio: high-band ÷ low-band mean of ``rct`` (:func:`high_low_ratio`).
        clean_accuracy: accuracy on the clean inputs, in [0, 1].
        robust_accuracy: accuracy on the adversarial images, in [0, 1].
        summary: the full :meth:`freqlens.attacks.AttackResult.summary` (success rate, perturbation
            norms, queries).
        settings: the attack's ``describe()``, or ``{"name": class name}`` if it has none.
    """

    name: str
    adversarial: Tensor
    rct: Tensor
    high_low_ratio: float
    clean_accuracy: float
    robust_accuracy: float
    summary: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able: scalars (non-finite → ``None``), attack settings, the RCT map as nested lists."""
        return {
            "name": self.name,
            "settings": self.settings,
            "high_low_ratio": _finite(self.high_low_ratio),
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "summary": {k: _finite(v) if isinstance(v, float) else v for k, v in self.summary.items()},
            "rct": self.rct.double().tolist(),
        }


@dataclass
class AttackSpectra(Mapping[str, AttackSpectrum]):
    """Read-only mapping attack name → :class:`AttackSpectrum`, with the band split used.

    Attributes:
        spectra: the outcomes by attack name.
        high_band: the first anti-diagonal band ``i + j`` counted as high frequency.
    """

    spectra: dict[str, AttackSpectrum]
    high_band: int

    def __getitem__(self, name: str) -> AttackSpectrum:
        return self.spectra[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.spectra)

    def __len__(self) -> int:
        return len(self.spectra)

    def to_dict(self) -> dict:
        """JSON-able: ``{"high_band": k, "attacks": {name: AttackSpectrum.to_dict()}}``."""
        return {"high_band": self.high_band, "attacks": {n: s.to_dict() for n, s in self.spectra.items()}}


def _check_high_band(high_band: int | None, h: int, w: int) -> int:
    if high_band is None:
        return (h + w - 1) // 2
    if isinstance(high_band, bool) or not isinstance(high_band, int):
        raise TypeError(f"high_band must be an integer, got {type(high_band).__name__}")
    if not 1 <= high_band <= h + w - 2:
        raise ValueError(f"high_band must be in [1, {h + w - 2}] for {h}×{w} images, got {high_band}")
    return high_band


def high_low_ratio(rct_map: Tensor, high_band: int | None = None) -> float:
    """High-band ÷ low-band mean of a DCT-domain map.

    ``mean(rct_map[i + j ≥ high_band]) / mean(rct_map[i + j < high_band])``.

    Args:
        rct_map: an ``[H, W]`` map over DCT coefficients (top-left = DC), ``H + W ≥ 3``.
        high_band: the first anti-diagonal band ``i + j`` counted as high, in ``[1, H + W − 2]``
            (``None``: ``(H + W − 1) // 2``, two halves of the bands).

    Returns:
        The ratio; ``inf`` if the low part is 0 and the high part not, ``nan`` if both are 0.

    Raises:
        ValueError: ``rct_map`` is not 2-D, has a single band, or ``high_band`` is out of range.
        TypeError: ``high_band`` is not an integer.
    """
    if not isinstance(rct_map, Tensor) or rct_map.dim() != 2:
        raise ValueError("rct_map must be a 2-D tensor [H, W]")
    h, w = rct_map.shape
    if h + w < 3:
        raise ValueError(f"an {h}×{w} map has a single DCT band: no high/low split")
    high_band = _check_high_band(high_band, h, w)
    high = dct_bands(h, w, device=rct_map.device) >= high_band
    values = rct_map.double()
    high_mean, low_mean = float(values[high].mean()), float(values[~high].mean())
    if low_mean == 0:
        return math.nan if high_mean == 0 else math.inf
    return high_mean / low_mean


def attack_spectra(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    attacks: Mapping[str, Callable[[Tensor, Tensor], Tensor]],
    batch_size: int | None = None,
    high_band: int | None = None,
    progress: bool = False,
) -> AttackSpectra:
    """Run each attack and measure the DCT footprint of its perturbations.

    Args:
        model, inputs, labels, batch_size, progress: as :func:`~freqlens.attacks.evaluation.run_attack`, which
            runs each attack.
        attacks: name → attack, ``attack(x, y) -> x_adv``, untargeted (e.g. :mod:`freqlens.attacks`
            objects).
        high_band: the band split of :func:`high_low_ratio` (``None``: ``(H + W − 1) // 2``).

    Returns:
        Per attack the adversarial images, the RCT map, its high/low ratio (module doc) and the
            clean / robust accuracy, as :class:`AttackSpectra`.

    Raises:
        ValueError: empty ``attacks``, single-band images, a bad ``high_band``, or a targeted attack.
        TypeError: an attack is not callable.
    """
    check_images(inputs)
    if not isinstance(attacks, Mapping) or not attacks:
        raise ValueError("attacks must be a non-empty mapping name -> attack")
    h, w = inputs.shape[-2:]
    if h + w < 3:
        raise ValueError(f"{h}×{w} images have a single DCT band: no high/low split")
    high_band = _check_high_band(high_band, h, w)
    spectra: dict[str, AttackSpectrum] = {}
    for name, attack in attacks.items():
        if not callable(attack):
            raise TypeError(f"attack {name!r} is not callable (got {type(attack).__name__})")
        result = run_attack(model, inputs, labels, attack, batch_size=batch_size, progress=progress)
        rct_map = rct(inputs.detach(), result.adversarial).cpu()
        summary = result.summary()
        describe = getattr(attack, "describe", None)
        spectra[str(name)] = AttackSpectrum(
            name=str(name),
            adversarial=result.adversarial,
            rct=rct_map,
            high_low_ratio=high_low_ratio(rct_map, high_band),
            clean_accuracy=summary["clean_accuracy"],
            robust_accuracy=summary["robust_accuracy"],
            summary=summary,
            settings=describe() if callable(describe) else {"name": type(attack).__name__},
        )
    return AttackSpectra(spectra=spectra, high_band=high_band)

