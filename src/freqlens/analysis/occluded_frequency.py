"""Occluded Frequency attribution (seed 003, Definition 1 and Experiment III / Fig. 4).

``O(b) = f_c(x) − f_c(idct2(dct2(x) with band b set to a baseline))`` for every DCT band
``b = i + j`` (``H + W − 1`` bands, 0 = DC), or per DCT coefficient with ``per_coefficient=True``.

Baselines (applied per image and channel):

* ``"zero"``: the occluded coefficients are set to 0 (the band is removed exactly).
* ``"noise"``: the occluded coefficients are replaced by ``N(0, s_b²)`` where ``s_b`` is the root mean
  square of the band's coefficients in that image and channel (the band's "std" about zero, so a band
  with one coefficient, e.g. DC, keeps its magnitude). One standard-normal draw per coefficient is
  made up front from ``generator``, so results are reproducible and independent of ``batch_size``.

The reconstructed images are **not** clipped to ``[0, 1]``: clipping would re-introduce energy in the
occluded band, and the model then would not see exactly "``x`` without band ``b``".

All occluded copies (``B × bands`` or ``B × H × W``) are streamed through the model in chunks of at
most ``batch_size`` images, with the model in eval mode (its flags restored afterwards).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from freqlens.spectral import band_mask, dct2, dct_bands, idct2
from freqlens.utils.perturb import clean_scores, score_perturbations
from freqlens.utils.tensors import check_images, eval_mode

__all__ = [
    "BASELINES",
    "SCORES",
    "ablate_bands",
    "low_band_share",
    "occluded_frequency",
    "occluded_frequency_by_class",
]

BASELINES = ("zero", "noise")
#: Scores of :func:`occluded_frequency`: those of :func:`~freqlens.utils.scores.select_score`, with
#: ``"probability"`` kept as the name of ``"prob"``.
SCORES = ("logit", "prob", "log_prob", "probability")


def _band_rms(coefficients: Tensor) -> Tensor:
    """``B×C×H×W`` tensor holding, at each coefficient, the RMS of its band (per image and channel)."""
    h, w = coefficients.shape[-2:]
    bands = dct_bands(h, w, device=coefficients.device).reshape(-1)
    n_bands = h + w - 1
    flat = coefficients.reshape(*coefficients.shape[:2], h * w)
    energy = torch.zeros(*flat.shape[:2], n_bands, dtype=flat.dtype, device=flat.device)
    energy.index_add_(2, bands, flat.square())
    counts = torch.bincount(bands, minlength=n_bands).to(flat.dtype)
    rms = (energy / counts).sqrt()
    return rms[..., bands].reshape(coefficients.shape)


def _baseline_values(coefficients: Tensor, baseline: str, generator: torch.Generator | None) -> Tensor:
    if baseline == "zero":
        return torch.zeros_like(coefficients)
    if baseline == "noise":
        gen_device = generator.device if generator is not None else coefficients.device
        noise = torch.randn(coefficients.shape, generator=generator, device=gen_device, dtype=coefficients.dtype)
        return noise.to(coefficients.device) * _band_rms(coefficients)
    raise ValueError(f"unknown baseline {baseline!r}; expected one of {', '.join(BASELINES)}")


def _check_score(score: str) -> str:
    """One of :data:`SCORES` (``"probability"`` is ``"prob"``), as a name of
    :func:`~freqlens.utils.scores.select_score`."""
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; expected one of {', '.join(SCORES)}")
    return "prob" if score == "probability" else score


@torch.no_grad()
def occluded_frequency(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None = None,
    baseline: str = "zero",
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    per_coefficient: bool = False,
    score: str = "logit",
    progress: bool = False,
) -> Tensor:
    """Occluded Frequency scores of ``inputs`` for class ``target``.

    Args:
        model: the classifier (``B×C×H×W`` → ``B×K`` logits; run in eval mode, flags restored).
        inputs: images ``B×C×H×W`` (pixels).
        target: the explained classes, ``LongTensor[B]``, an int, or ``None`` = the predicted class.
        baseline: ``"zero"`` or ``"noise"`` (module doc).
        batch_size: the most occluded copies per forward pass (``None``: all ``B × parts`` at once).
        generator: the random source of the ``"noise"`` baseline.
        per_coefficient: occlude single DCT coefficients (the same coefficient in every channel)
            instead of bands.
        score: ``"logit"`` (as in the paper) or ``"probability"`` (softmax of the logits); also
            ``"prob"`` / ``"log_prob"`` (:data:`SCORES`).
        progress: show a tqdm bar (stderr).

    Returns:
        ``Tensor[B, H+W−1]`` (one score per band ``i + j``), or ``Tensor[B, H, W]`` (one score per
            DCT coefficient) with ``per_coefficient=True``.

    Raises:
        ValueError: bad images, an unknown ``baseline`` or ``score``.
    """
    check_images(inputs)
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; expected one of {', '.join(BASELINES)}")
    score = _check_score(score)
    batch, _, h, w = inputs.shape
    with eval_mode(model):
        target, base_scores = clean_scores(model, inputs, target, score, batch_size)
        coefficients = dct2(inputs)
        replacement = _baseline_values(coefficients, baseline, generator)
        if per_coefficient:
            n_parts = h * w
            masks = torch.eye(h * w, dtype=torch.bool, device=inputs.device).reshape(n_parts, h, w)
        else:
            n_parts = h + w - 1
            bands = dct_bands(h, w, device=inputs.device)
            masks = bands[None] == torch.arange(n_parts, device=inputs.device)[:, None, None]
        occluded_scores = score_perturbations(
            lambda kept: model(idct2(kept)), coefficients, replacement, target, n_parts,
            lambda image, which: ~masks[which][:, None], score, batch_size or batch * n_parts,
            progress=progress, desc="occluded frequency",
        )
    result = base_scores[:, None] - occluded_scores
    return result.reshape(batch, h, w) if per_coefficient else result


def occluded_frequency_by_class(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    target: Tensor | int | None = None,
    **kwargs,
) -> dict[int, Tensor]:
    """Mean Occluded Frequency profile per class of ``labels``.

    Args:
        model: the classifier.
        inputs: images ``B×C×H×W``.
        labels: the classes ``LongTensor[B]`` the images are grouped by.
        target: the explained classes (``LongTensor[B]`` or an int); ``None``: each image is explained
            for its own label.
        **kwargs: the other keywords of :func:`occluded_frequency` (``per_coefficient`` excluded).

    Returns:
        Class → mean profile ``Tensor[H+W−1]``.

    Raises:
        ValueError: ``labels`` not a ``LongTensor[B]`` of class indices, or ``per_coefficient`` given.
    """
    check_images(inputs)
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != inputs.shape[0]:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a LongTensor of shape [{inputs.shape[0]}], got {shape}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must hold integer class indices, got dtype {labels.dtype}")
    if kwargs.get("per_coefficient"):
        raise ValueError("occluded_frequency_by_class averages band profiles; per_coefficient is not supported")
    labels = labels.to(inputs.device)
    profiles = occluded_frequency(model, inputs, labels if target is None else target, **kwargs)
    return {int(c): profiles[labels == c].mean(dim=0) for c in torch.unique(labels).tolist()}


def ablate_bands(x: Tensor, bands: int | Iterable[int] | Tensor) -> Tensor:
    """``x`` with the DCT bands ``bands`` removed (their coefficients set to 0).

    Not clipped to ``[0, 1]`` (see module doc). Seed 003, Fig. 4: ``ablate_bands(x, range(k))`` removes
    the ``k`` lowest bands; ``ablate_bands(x, profile.topk(k).indices)`` the ``k`` most important.

    Args:
        x: a floating tensor ``[..., H, W]``.
        bands: the anti-diagonal bands ``i + j`` to remove (0 = DC): one, several, or a tensor of them.

    Returns:
        The filtered ``x``, same shape.

    Raises:
        ValueError: ``x`` is not a floating tensor with at least 2 dimensions.
    """
    if not isinstance(x, Tensor) or x.dim() < 2 or not x.is_floating_point():
        raise ValueError("x must be a floating tensor [..., H, W]")
    h, w = x.shape[-2:]
    keep = ~band_mask(h, w, bands, device=x.device)
    return idct2(dct2(x) * keep)


def low_band_share(profile: Tensor, cutoff: int) -> Tensor:
    """Share of the positive attribution of ``profile`` held by the bands ``< cutoff``.

    ``sum(max(O_b, 0), b < cutoff) / sum(max(O_b, 0))`` per profile.

    Args:
        profile: band scores, a floating tensor ``[..., bands]``.
        cutoff: the number of low bands (a non-negative integer).

    Returns:
        ``Tensor[...]`` in ``[0, 1]``; 0 where no band has a positive score.

    Raises:
        ValueError: a non-floating or 0-d ``profile``, or a negative / non-integer ``cutoff``.
    """
    if not isinstance(profile, Tensor) or profile.dim() < 1 or not profile.is_floating_point():
        raise ValueError("profile must be a floating tensor [..., bands]")
    if isinstance(cutoff, bool) or int(cutoff) != cutoff or cutoff < 0:
        raise ValueError(f"cutoff must be a non-negative integer, got {cutoff!r}")
    positive = profile.clamp(min=0)
    total = positive.sum(dim=-1)
    low = positive[..., : int(cutoff)].sum(dim=-1)
    return torch.where(total > 0, low / total.clamp(min=torch.finfo(total.dtype).tiny), torch.zeros_like(total))
