"""The perturbation core: one baseline, one blur, one streamed perturb-and-score loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from freqlens.utils.perturb import (
    clean_scores,
    default_blur_sigma,
    gaussian_blur,
    resolve_baseline,
    score_perturbations,
)


def _linear_model(channels: int = 2, size: int = 6, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, classes))
    return model.double()


def test_named_and_numeric_baselines_have_one_meaning():
    images = torch.rand(3, 2, 5, 7, dtype=torch.float64)
    assert torch.equal(resolve_baseline(0.25, images), torch.full_like(images, 0.25))
    assert torch.equal(resolve_baseline("zeros", images), torch.zeros_like(images))
    assert torch.equal(resolve_baseline("zero", images), torch.zeros_like(images))
    mean = resolve_baseline("mean", images)
    torch.testing.assert_close(mean[1, 0], images[1, 0].mean().expand(5, 7))
    torch.testing.assert_close(mean.mean(dim=(2, 3)), images.mean(dim=(2, 3)))
    per_image = torch.rand(2, 5, 7, dtype=torch.float64)
    assert torch.equal(resolve_baseline(per_image, images)[2], per_image)
    halves = resolve_baseline(torch.full((2, 5, 7), 0.5, dtype=torch.float16), images)
    assert halves.dtype == torch.float64 and bool((halves == 0.5).all())


def test_blur_baseline_uses_the_shorter_side():
    """σ = min(H, W) / 16 for every caller (Occlusion, Sobol, HSIC and the metrics used to disagree)."""
    images = torch.rand(2, 3, 20, 12)
    assert default_blur_sigma(20, 12) == 12 / 16
    torch.testing.assert_close(resolve_baseline("blur", images), gaussian_blur(images, 12 / 16))
    torch.testing.assert_close(resolve_baseline("blur", images, blur_sigma=2.0), gaussian_blur(images, 2.0))


@pytest.mark.parametrize(
    ("baseline", "error", "message"),
    [("noise", ValueError, "unknown baseline"), (True, TypeError, "baseline must be"),
     ([1, 2], TypeError, "baseline must be a number"), (math.nan, ValueError, "finite"),
     (torch.tensor([math.inf]), ValueError, "NaN or infinite"), (torch.zeros(4, 4), ValueError, "broadcast"),
     (torch.zeros(1, dtype=torch.bool), ValueError, "floating tensor"),
     (torch.zeros(3, 5, 5, dtype=torch.uint8), ValueError, "floating tensor")],
)
def test_bad_baselines_are_refused_clearly(baseline, error, message):
    with pytest.raises(error, match=message):
        resolve_baseline(baseline, torch.rand(2, 3, 5, 5))


def test_blur_keeps_constants_and_attenuates_a_sinusoid_as_its_transfer_function():
    """A Gaussian of std σ multiplies a frequency f (cycles per pixel) by exp(−2π²σ²f²) away from the borders."""
    constant = torch.full((1, 2, 9, 11), 0.3, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(constant, 1.3), constant)
    size, cycles, sigma = 128, 8, 1.5
    frequency = cycles / size
    columns = torch.arange(size, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * frequency * columns).expand(1, 1, size, size).clone()
    blurred = gaussian_blur(wave, sigma)
    interior = slice(16, size - 16)
    expected = math.exp(-2 * math.pi**2 * sigma**2 * frequency**2) * wave
    torch.testing.assert_close(blurred[..., interior, interior], expected[..., interior, interior], atol=1e-4, rtol=0)


@pytest.mark.parametrize("sigma", [0.0, -1.0, math.inf, True])
def test_blur_refuses_a_std_that_is_not_a_positive_number(sigma):
    with pytest.raises(ValueError, match="blur_sigma"):
        gaussian_blur(torch.rand(1, 1, 4, 4), sigma)


def _masks(images: torch.Tensor, n: int):
    generator = torch.Generator().manual_seed(3)
    table = torch.rand(images.shape[0], n, 1, *images.shape[-2:], generator=generator) > 0.5
    return table, lambda image, ids: table[image, ids]


def test_scores_of_perturbations_match_the_closed_form_of_a_linear_model():
    """``r + m ⊙ (x − r)`` for every (image, mask) pair: the logit of a linear model is known exactly."""
    model = _linear_model()
    images = torch.rand(4, 2, 6, 6, dtype=torch.float64)
    references = torch.rand(4, 2, 6, 6, dtype=torch.float64)
    target = torch.tensor([0, 2, 1, 2])
    table, keep = _masks(images, 5)
    scores = score_perturbations(model, images, references, target, 5, keep, "logit", batch_size=3)
    weight, bias = model[1].weight, model[1].bias
    perturbed = torch.where(table, images[:, None], references[:, None])  # B×n×C×H×W
    expected = perturbed.flatten(2) @ weight[target].unsqueeze(2) + bias[target][:, None, None]
    torch.testing.assert_close(scores, expected.squeeze(2))


def test_perturbation_scores_do_not_depend_on_batch_size_or_mask_dtype():
    model = _linear_model()
    images = torch.rand(3, 2, 6, 6, dtype=torch.float64)
    references = resolve_baseline("blur", images)
    target = torch.tensor([1, 0, 2])
    table, keep = _masks(images, 7)
    runs = [score_perturbations(model, images, references, target, 7, keep, "prob", batch_size=size)
            for size in (1, 4, 21)]
    blended = score_perturbations(model, images, references, target, 7,
                                  lambda image, ids: table[image, ids].double(), "prob", batch_size=5)
    for other in (*runs[1:], blended):
        torch.testing.assert_close(other, runs[0], rtol=1e-12, atol=1e-12)


def test_every_chunk_is_reported_and_the_model_flags_are_restored():
    model = _linear_model().train()
    images = torch.rand(2, 2, 6, 6, dtype=torch.float64)
    seen = []
    _, keep = _masks(images, 3)
    scores = score_perturbations(model, images, images, torch.tensor([0, 1]), 3, keep, "logit", batch_size=4,
                                 dtype=torch.float32, on_chunk=lambda image, value, masks: seen.append(image.tolist()))
    assert seen == [[0, 0, 0, 1], [1, 1]] and scores.dtype == torch.float32 and scores.shape == (2, 3)
    assert model.training and all(module.training for module in model.modules())


def test_clean_scores_predict_the_target_from_the_same_pass():
    model = _linear_model()
    images = torch.rand(5, 2, 6, 6, dtype=torch.float64)
    target, scores = clean_scores(model, images, None, "log_prob", batch_size=2)
    logits = model(images)
    assert torch.equal(target, logits.argmax(dim=1))
    torch.testing.assert_close(scores, logits.log_softmax(dim=1).max(dim=1).values)
    given, _ = clean_scores(model, images, 2, "logit", batch_size=None)
    assert given.tolist() == [2] * 5
    with pytest.raises(ValueError, match="out of range"):
        clean_scores(model, images, 7, "logit", batch_size=None)
