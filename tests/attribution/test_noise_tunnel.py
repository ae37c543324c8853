"""Noise tunnel (SmoothGrad, SmoothGrad², VarGrad): statistics, noise scale, reproducibility, streaming."""

from __future__ import annotations

import math

import pytest
import torch

from freqlens.attribution import (
    RISE,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
    SmoothGradSq,
    VarGrad,
    count_passes,
)

from .conftest import DummyOcclusion, IdentityExplainer, SmoothCNN, assert_close, make_images

TUNNELS = [SmoothGrad, SmoothGradSq, VarGrad]
TARGET = torch.tensor([1, 4, 6, 8])


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("tunnel", TUNNELS)
def test_vanishing_noise_gives_the_wrapped_method(smooth_cnn, images, tunnel):
    base = Saliency(smooth_cnn)(images, TARGET)
    expected = {SmoothGrad: base, SmoothGradSq: base * base, VarGrad: torch.zeros_like(base)}[tunnel]
    out = tunnel(Saliency(smooth_cnn), n=4, sigma=1e-12, generator=_gen())(images, TARGET)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert_close(out, expected, atol_scale=1e-6)


def test_constant_gradient_is_unchanged_by_noise(linear_model, linear_images):
    target = torch.tensor([0, 1, 2, 3])
    weights = linear_model.weight_maps()[target]
    assert_close(SmoothGrad(Saliency(linear_model), n=5, noise_level=0.5, generator=_gen())(linear_images, target),
                 weights)
    assert VarGrad(Saliency(linear_model), n=5, noise_level=0.5, generator=_gen())(linear_images, target).abs().max() < 1e-9


def test_variance_identity_and_order(smooth_cnn):
    x = make_images(batch=3, dtype=torch.float64)
    model = SmoothCNN().double().eval()
    target = torch.tensor([2, 5, 7])
    kwargs = {"n": 6, "noise_level": 0.3}
    mean = SmoothGrad(Saliency(model), generator=_gen(4), **kwargs)(x, target)
    square = SmoothGradSq(Saliency(model), generator=_gen(4), **kwargs)(x, target)
    biased = VarGrad(Saliency(model), generator=_gen(4), **kwargs)(x, target)
    unbiased = VarGrad(Saliency(model), generator=_gen(4), unbiased=True, **kwargs)(x, target)
    assert (biased >= 0).all() and (square >= mean * mean - 1e-15).all()
    torch.testing.assert_close(biased, square - mean * mean, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(unbiased, biased * 6 / 5, rtol=1e-12, atol=0)
    assert biased.max() > 1e-6  # the noise does change the gradient of the smooth CNN


def test_statistics_of_the_noise_itself():
    # Wrapping the identity exposes the noisy copies: mean ≈ x, variance ≈ σ² per image.
    x = make_images(batch=3, shape=(1, 16, 16))
    n = 400
    spans = (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    for tunnel_kwargs, sigma in (({"noise_level": 0.2}, 0.2 * spans), ({"sigma": 0.05}, torch.full((3,), 0.05))):
        mean = SmoothGrad(IdentityExplainer(), n=n, generator=_gen(), **tunnel_kwargs)(x, 0)
        var = VarGrad(IdentityExplainer(), n=n, unbiased=True, generator=_gen(), **tunnel_kwargs)(x, 0)
        # mean of n draws: per-pixel std σ/√n; averaged over 256 pixels the error is tiny
        assert ((mean - x).abs().flatten(1).amax(1) < 5 * sigma / math.sqrt(n)).all()
        ratio = var.flatten(1).mean(1) / sigma**2
        assert ((ratio - 1).abs() < 0.03).all(), ratio


def test_noise_level_scales_with_each_image_range():
    x = make_images(batch=2, shape=(1, 8, 8))
    x[1] = x[1] * 0.1  # ten times smaller range
    var = VarGrad(IdentityExplainer(), n=200, noise_level=0.3, generator=_gen())(x, 0).flatten(1).mean(1)
    spans = x.flatten(1).amax(1) - x.flatten(1).amin(1)
    ratio = (var[0] / var[1]) / (spans[0] / spans[1]) ** 2
    assert abs(float(ratio) - 1) < 0.15


def test_same_seed_same_result_and_different_seed_differs(smooth_cnn, images):
    make = lambda seed: SmoothGrad(Saliency(smooth_cnn), n=3, generator=_gen(seed))
    first, again, other = make(1)(images, TARGET), make(1)(images, TARGET), make(2)(images, TARGET)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    # a generator given to attribute() overrides the constructor's
    tunnel = SmoothGrad(Saliency(smooth_cnn), n=3, generator=_gen(2))
    assert torch.equal(tunnel(images, TARGET, generator=_gen(1)), first)


def test_global_rng_is_used_without_generator(smooth_cnn, images):
    torch.manual_seed(5)
    first = SmoothGrad(Saliency(smooth_cnn), n=2)(images, TARGET)
    torch.manual_seed(5)
    assert torch.equal(SmoothGrad(Saliency(smooth_cnn), n=2)(images, TARGET), first)


def test_around_integrated_gradients(smooth_cnn):
    x = make_images(batch=2)
    target = torch.tensor([3, 3])
    ig = IntegratedGradients(smooth_cnn, steps=8)
    assert_close(SmoothGrad(ig, n=2, sigma=1e-12, generator=_gen())(x, target), ig(x, target), atol_scale=1e-5)
    outs = [VarGrad(ig, n=3, noise_level=0.2, batch_size=bs, generator=_gen(3))(x, target) for bs in (1, 4, None)]
    for out in outs[1:]:
        assert_close(out, outs[0], atol_scale=1e-5)
    assert outs[0].max() > 0


def test_around_a_deterministic_black_box(smooth_cnn):
    x = make_images(batch=2)
    target = torch.tensor([0, 1])
    occlusion = DummyOcclusion(smooth_cnn)
    tunnel = SmoothGrad(occlusion, n=3, noise_level=0.1, batch_size=2, generator=_gen())
    out = tunnel(x, target)
    assert out.shape == (2, 1, 16, 16) and tunnel.per_channel is False and tunnel.explainer is occlusion
    assert_close(SmoothGrad(occlusion, n=3, noise_level=0.1, batch_size=5, generator=_gen())(x, target), out)
    assert_close(SmoothGrad(occlusion, n=2, sigma=1e-12, generator=_gen())(x, target), occlusion.attribute(x, target))


def test_around_rise_stochastic_black_box(smooth_cnn):
    x = make_images(batch=2)
    target = torch.tensor([0, 1])
    own = torch.Generator().manual_seed(99)
    rise = RISE(smooth_cnn, n_masks=16, grid=4, generator=own, progress=False)
    outs = [SmoothGrad(rise, n=3, noise_level=0.1, batch_size=bs, generator=_gen(1))(x, target) for bs in (1, 2, None)]
    for out in outs[1:]:
        assert_close(out, outs[0], atol_scale=1e-5)
    assert rise.generator is own  # the child generators were handed over and the original restored
    other = SmoothGrad(rise, n=3, noise_level=0.1, generator=_gen(2))(x, target)
    assert not torch.allclose(other, outs[0])
    # Every sample's RISE call drew fresh masks: with vanishing noise the tunnel still averages
    # three different RISE maps, not three copies of one.
    same_noise = SmoothGrad(rise, n=3, sigma=1e-12, generator=_gen(1))(x, target)
    single = rise.attribute(x, target)
    assert not torch.allclose(same_noise, single)


def test_nested_tunnel(smooth_cnn):
    x = make_images(batch=2)
    target = torch.tensor([5, 6])
    inner = SmoothGrad(Saliency(smooth_cnn), n=2, noise_level=0.1)
    outs = [VarGrad(inner, n=3, noise_level=0.1, batch_size=bs, generator=_gen(8))(x, target) for bs in (1, None)]
    assert_close(outs[1], outs[0])
    assert inner.generator is None
    calls = IdentityExplainer()
    SmoothGrad(SmoothGrad(calls, n=2), n=3, batch_size=1, generator=_gen())(x, target)
    assert calls.calls == [4] * 3  # per outer sample: one inner call on its 2 images × 2 inner samples


def test_one_call_of_the_wrapped_explainer_per_chunk():
    x = make_images(batch=3, shape=(1, 4, 4))
    identity = IdentityExplainer()
    SmoothGrad(identity, n=10, batch_size=6, generator=_gen())(x, 0)
    assert identity.calls == [6] * 5


def test_gradient_tunnel_costs_n_images_per_image(smooth_cnn):
    x = make_images(batch=3)
    with count_passes(smooth_cnn) as count:
        SmoothGrad(Saliency(smooth_cnn, batch_size=8), n=10, batch_size=8, generator=_gen())(x, torch.tensor([1, 2, 3]))
    assert count.forward == count.backward == 30
    assert count.forward_calls == math.ceil(30 / 8)


def test_exposes_wrapped_explainer_and_model(smooth_cnn):
    saliency = Saliency(smooth_cnn)
    tunnel = VarGrad(saliency, n=2)
    assert tunnel.explainer is saliency and tunnel.model is smooth_cnn and tunnel.per_channel
    assert "VarGrad" in repr(tunnel)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"n": 0}, ValueError, "positive integer"),
    ({"n": 2.0}, ValueError, "positive integer"),
    ({"noise_level": -0.1}, ValueError, "noise_level"),
    ({"sigma": float("nan")}, ValueError, "sigma"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"generator": 3}, TypeError, "generator"),
])
def test_bad_arguments(smooth_cnn, kwargs, error, message):
    with pytest.raises(error, match=message):
        SmoothGrad(Saliency(smooth_cnn), **kwargs)


def test_bad_wrapped_and_inputs(smooth_cnn, images):
    with pytest.raises(TypeError, match="attribute"):
        SmoothGrad(smooth_cnn)
    with pytest.raises(ValueError, match="n >= 2"):
        VarGrad(Saliency(smooth_cnn), n=1, unbiased=True)
    with pytest.raises(ValueError, match="B×C×H×W"):
        SmoothGrad(Saliency(smooth_cnn), n=2)(images[0], 0)
    with pytest.raises(ValueError, match="out of range"):
        SmoothGrad(Saliency(smooth_cnn), n=2)(images, 10)
    with pytest.raises(ValueError, match="explicit target"):
        SmoothGrad(IdentityExplainer(), n=2)(images)


def test_matches_captum_noise_tunnel_statistics(linear_model, linear_images):
    # Captum draws its own noise: compare where the answer does not depend on it (linear model).
    captum_attr = pytest.importorskip("captum.attr")
    target = torch.tensor([0, 1, 2, 3])
    tunnel = captum_attr.NoiseTunnel(captum_attr.Saliency(linear_model))
    expected = tunnel.attribute(linear_images.clone().requires_grad_(), nt_type="smoothgrad", nt_samples=4,
                                stdevs=0.3, target=target, abs=False)
    assert_close(SmoothGrad(Saliency(linear_model), n=4, sigma=0.3, generator=_gen())(linear_images, target), expected)
