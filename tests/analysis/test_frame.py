"""The frequency frame (issue 17, item 4): known answers on linear models, invariances, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from freqlens.analysis.frame import FrequencyFrame, frame_hf_depth, frequency_frame

SIDE = 8


def _linear_model(pattern: torch.Tensor) -> nn.Module:
    """1×1 identity conv, then a linear read-out whose class-0 weight is ``pattern`` and class-1 weight
    ``−pattern``: the input gradient (and the conv output's) of either class is ``±pattern``."""
    conv = nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    linear = nn.Linear(3 * SIDE * SIDE, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.stack([pattern.flatten(), -pattern.flatten()]))
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), linear).eval()


def _checkerboard() -> torch.Tensor:
    i, j = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    return ((-1.0) ** (i + j)).expand(3, SIDE, SIDE).clone()


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, SIDE, SIDE, generator=generator), torch.randint(0, 2, (n,), generator=generator)


def _frame(models, batch_size=None) -> FrequencyFrame:
    images, labels = _data(10, 0)
    return frequency_frame(models, images, labels, _data(6, 1), steps=3, sigmas=[1.0, 2.0, math.inf],
                           pgd_steps=2, batch_size=batch_size, n_resamples=50)


def test_gradient_hf_is_one_for_a_checkerboard_gradient_and_zero_for_a_constant_one():
    frame = _frame({"checker": _linear_model(_checkerboard()), "flat": _linear_model(torch.ones(3, SIDE, SIDE))})
    checker, flat = frame.rows
    assert checker.gradient_hf.estimate == pytest.approx(1.0, abs=1e-6)
    assert flat.gradient_hf.estimate == pytest.approx(0.0, abs=1e-6)
    # the conv output's gradient is the same pattern (identity 1×1 conv): the depth profile says the same
    assert frame_hf_depth(frame)["checker"][0][1] == pytest.approx(1.0, abs=1e-5)


def test_rows_follow_the_models_and_accuracies_are_consistent():
    models = {"b": _linear_model(_checkerboard()), "a": _linear_model(torch.ones(3, SIDE, SIDE))}
    frame = _frame(models)
    assert [row.name for row in frame.rows] == ["b", "a"]
    images, labels = _data(10, 0)
    for row, model in zip(frame.rows, models.values()):
        with torch.no_grad():
            assert row.clean_accuracy == pytest.approx(float((model(images).argmax(1) == labels).float().mean()))
        assert 0.0 <= row.robust_accuracy <= row.clean_accuracy
        assert 0.0 <= row.low_band_share.low <= row.low_band_share.high <= 1.0
        assert row.sigma_star in (1.0, 2.0, math.inf)
    payload = frame.to_dict()
    assert payload["settings"]["images"] == 10 and payload["settings"]["calibration_images"] == 6
    assert "| b |" in frame.markdown() and "| a |" in frame.markdown()


def test_batch_size_does_not_change_the_frame():
    model = _linear_model(_checkerboard() + 0.5)
    whole, chunked = _frame({"m": model}).rows[0], _frame({"m": model}, batch_size=3).rows[0]
    for name in ("gradient_hf", "vii", "low_band_share", "forgrad_score", "forgrad_gain"):
        assert getattr(chunked, name).estimate == pytest.approx(getattr(whole, name).estimate, abs=1e-6)
    assert chunked.sigma_star == whole.sigma_star
    assert chunked.robust_accuracy == whole.robust_accuracy


@pytest.mark.parametrize("models", [{}, {"m": "not a model"}, None])
def test_bad_models_are_refused(models):
    images, labels = _data(4, 0)
    with pytest.raises((ValueError, TypeError), match="models"):
        frequency_frame(models, images, labels, _data(4, 1))


def test_labels_must_match_the_images():
    images, labels = _data(4, 0)
    with pytest.raises(ValueError, match="labels"):
        frequency_frame({"m": _linear_model(_checkerboard())}, images, labels.float(), _data(4, 1))
    with pytest.raises(ValueError, match="calibration labels"):
        frequency_frame({"m": _linear_model(_checkerboard())}, images, labels, (images, labels[:2]))
