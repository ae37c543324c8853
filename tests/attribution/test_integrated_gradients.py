"""Integrated Gradients: quadrature rules, closed form on a linear model, completeness, streaming."""

from __future__ import annotations

import math

import pytest
import torch

from freqlens.attribution import IntegratedGradients, count_passes
from freqlens.attribution.integrated_gradients import METHODS, integration_points

from .conftest import SmoothCNN, assert_close, make_images


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("steps", [2, 5, 16])
def test_integration_points_are_a_quadrature_rule_on_unit_interval(method, steps):
    alphas, weights = integration_points(steps, method)
    assert alphas.shape == weights.shape == (steps,)
    assert alphas.min() >= 0 and alphas.max() <= 1 and (weights > 0).all()
    assert math.isclose(float(weights.sum()), 1.0, rel_tol=1e-12)
    mean = float((alphas * weights).sum())  # ∫₀¹ α dα = 1/2, exact for all but left / right
    expected = {"riemann_left": (steps - 1) / (2 * steps), "riemann_right": (steps + 1) / (2 * steps)}.get(method, 0.5)
    assert math.isclose(mean, expected, rel_tol=1e-12)


def test_gauss_legendre_is_exact_for_degree_2n_minus_1():
    alphas, weights = integration_points(4, "gausslegendre")
    for degree in range(8):  # ∫₀¹ αᵈ dα = 1 / (d + 1)
        assert math.isclose(float((alphas**degree * weights).sum()), 1 / (degree + 1), rel_tol=1e-12)


@pytest.mark.parametrize(("steps", "method", "message"), [
    (0, "gausslegendre", "positive"), (2.5, "gausslegendre", "positive"),
    (8, "simpson", "unknown integration method"), (1, "riemann_trapezoid", "steps >= 2"),
])
def test_integration_points_reject(steps, method, message):
    with pytest.raises(ValueError, match=message):
        integration_points(steps, method)


@pytest.mark.parametrize("method", METHODS)
def test_linear_model_gives_input_times_weight(linear_model, linear_images, method):
    target = torch.tensor([4, 1, 0, 2])
    weights = linear_model.weight_maps()[target]
    maps = IntegratedGradients(linear_model, steps=5, method=method)(linear_images, target)
    # The gradient is W everywhere: every rule (weights summing to 1) is exact.
    assert_close(maps, linear_images * weights, atol_scale=1e-5)
    baseline = torch.full((3, 8, 8), 0.25)
    maps = IntegratedGradients(linear_model, baseline=baseline, steps=3, method=method)(linear_images, target)
    assert_close(maps, (linear_images - 0.25) * weights, atol_scale=1e-5)


def test_baseline_forms_agree(linear_model, linear_images):
    target = torch.tensor([0, 1, 2, 3])
    reference = IntegratedGradients(linear_model, baseline=0.5, steps=4)(linear_images, target)
    for baseline in (torch.tensor(0.5), torch.full((1, 3, 8, 8), 0.5), torch.full((4, 3, 8, 8), 0.5)):
        assert_close(IntegratedGradients(linear_model, baseline=baseline, steps=4)(linear_images, target), reference)
    zeros = IntegratedGradients(linear_model, baseline="zeros", steps=4)(linear_images, target)
    assert_close(IntegratedGradients(linear_model, steps=4)(linear_images, target, baseline=0.0), zeros)


def _completeness_error(model, x, target, baseline, steps, method):
    maps = IntegratedGradients(model, baseline=baseline, steps=steps, method=method)(x, target)
    rows = torch.arange(x.shape[0])
    with torch.no_grad():
        gap = model(x)[rows, target] - model(torch.full_like(x, baseline))[rows, target]
    return ((maps.sum((1, 2, 3)) - gap).abs() / gap.abs()).max().item()


@pytest.mark.parametrize("method", ["riemann_trapezoid", "gausslegendre"])
def test_completeness_within_one_percent_at_64_steps(smooth_cnn, images, method):
    target = torch.tensor([0, 3, 5, 9])
    assert _completeness_error(smooth_cnn, images, target, 0.0, 64, method) < 0.01
    assert _completeness_error(smooth_cnn, images, target, 0.3, 64, method) < 0.01
    # The paths are curved: a crude rule misses completeness by far (so the check above has teeth).
    assert _completeness_error(smooth_cnn, images, target, 0.0, 2, "riemann_left") > 0.05


def test_trapezoid_converges_at_second_order(images):
    model, x, target = SmoothCNN().double().eval(), images.double(), torch.tensor([0, 3, 5, 9])
    coarse = _completeness_error(model, x, target, 0.0, 4, "riemann_trapezoid")
    fine = _completeness_error(model, x, target, 0.0, 8, "riemann_trapezoid")
    assert 2.5 < coarse / fine < 6  # error ∝ 1/steps²


def test_pairs_are_streamed_in_bounded_chunks(smooth_cnn, images):
    target = torch.tensor([2, 2, 7, 1])
    with count_passes(smooth_cnn) as count:
        IntegratedGradients(smooth_cnn, steps=25, batch_size=8)(images, target)
    assert count.forward == count.backward == 4 * 25
    assert count.forward_calls == math.ceil(100 / 8)


@pytest.mark.parametrize(("baseline", "message"), [
    ("blurry", "unknown baseline"), (float("nan"), "finite"), (torch.tensor([float("inf")]), "NaN or infinite"),
    (torch.zeros(3, 8, 8, dtype=torch.long), "floating"),
])
def test_bad_baseline_rejected_at_construction(smooth_cnn, baseline, message):
    with pytest.raises(ValueError, match=message):
        IntegratedGradients(smooth_cnn, baseline=baseline)
    with pytest.raises(TypeError, match="number, a tensor"):
        IntegratedGradients(smooth_cnn, baseline=[0.0])


def test_bad_baseline_shape_and_inputs(smooth_cnn, images):
    with pytest.raises(ValueError, match="does not broadcast"):
        IntegratedGradients(smooth_cnn, baseline=torch.zeros(3, 8, 8))(images, 0)
    with pytest.raises(ValueError, match="B×C×H×W"):
        IntegratedGradients(smooth_cnn)(images[0], 0)
    with pytest.raises(ValueError, match="out of range"):
        IntegratedGradients(smooth_cnn, steps=2)(images, 10)
    with pytest.raises(ValueError, match="shape \\[4\\]"):
        IntegratedGradients(smooth_cnn, steps=2)(images, torch.tensor([1, 2]))


@pytest.mark.parametrize("method", METHODS)
def test_matches_captum(smooth_cnn, method):
    captum_attr = pytest.importorskip("captum.attr")
    x = make_images(batch=3)
    target = torch.tensor([1, 4, 6])
    steps = 32
    expected = captum_attr.IntegratedGradients(smooth_cnn).attribute(
        x.clone(), baselines=0.0, target=target, n_steps=steps, method=method)
    ours = IntegratedGradients(smooth_cnn, steps=steps, method=method)(x, target)
    cosine = torch.nn.functional.cosine_similarity(ours.flatten(1), expected.flatten(1), dim=1)
    assert (cosine > 0.99).all()
    if method == "riemann_trapezoid":
        # Captum's trapezoid weights are 1/n (halved at the ends), summing to (n − 1)/n instead of 1;
        # ours are 1/(n − 1) — a proportional rule, so the maps differ by exactly that factor.
        ours = ours * (steps - 1) / steps
    assert_close(ours, expected, atol_scale=1e-5, rtol=1e-4)
