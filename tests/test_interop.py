"""freqlens.interop: Captum attributions as explainers (same maps as freqlens, FORGrad on top), Quantus layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from freqlens.analysis import rank_methods
from freqlens.attribution import FORGrad, GradientInput, Saliency
from freqlens.interop import CaptumExplainer, quantus_explain_func, to_quantus
from freqlens.spectral import lowpass
from freqlens.utils.tensors import reduce_channels


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)).eval()
    return model, torch.rand(4, 3, 8, 8)


def test_captum_saliency_equals_freqlens_saliency(cnn):
    captum_attr = pytest.importorskip("captum.attr")
    model, x = cnn
    target = torch.tensor([0, 1, 2, 3])
    wrapped = CaptumExplainer(captum_attr.Saliency(model), abs=False)
    assert wrapped.per_channel and wrapped.label == "captum_saliency"
    assert torch.equal(wrapped(x, target), Saliency(model)(x, target))
    # target None = the predicted class, as freqlens explainers
    assert torch.equal(wrapped(x), Saliency(model)(x, model(x).argmax(1)))
    gxi = CaptumExplainer(captum_attr.InputXGradient(model))
    torch.testing.assert_close(gxi(x, target), GradientInput(model)(x, target))


def test_forgrad_and_ranking_apply_to_a_captum_explainer(cnn):
    captum_attr = pytest.importorskip("captum.attr")
    model, x = cnn
    wrapped = CaptumExplainer(captum_attr.Saliency(model), abs=False, label="captum_sal")
    filtered = FORGrad(wrapped, sigma=2)(x)
    torch.testing.assert_close(filtered, lowpass(Saliency(model)(x).mean(dim=1, keepdim=True).abs(), 2, "box").abs())
    ranking = rank_methods(model, x, methods=(wrapped,), forgrad=2.0, steps=4, mufidelity_samples=8,
                           progress=False)
    assert [r.label for r in ranking.rows + ranking.forgrad_rows] == ["captum_sal", "captum_sal*"]
    assert (ranking.rows[0].forward, ranking.rows[0].backward) == (1, 1)  # target resolved before counting


def test_captum_wrapper_rejects_non_attributions():
    with pytest.raises(TypeError, match="Captum attribution"):
        CaptumExplainer(object())


def test_to_quantus_layout(cnn):
    model, x = cnn
    maps = Saliency(model)(x)
    a_batch = to_quantus(maps)
    assert a_batch.shape == (4, 1, 8, 8) and a_batch.dtype == np.float32
    np.testing.assert_allclose(a_batch[:, 0], reduce_channels(maps, "sum").numpy(), rtol=1e-6)
    assert to_quantus(maps, reduce=None).shape == (4, 3, 8, 8)
    assert to_quantus(maps[:, 0]).shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="B×C×H×W"):
        to_quantus(maps[0, 0, 0])


def test_quantus_metric_accepts_freqlens_maps(cnn):
    quantus = pytest.importorskip("quantus")
    model, x = cnn
    y = model(x).argmax(1)
    explain = quantus_explain_func(Saliency(model))
    a_batch = explain(model, x.numpy(), y.numpy())
    np.testing.assert_allclose(a_batch, to_quantus(Saliency(model)(x, y)))
    metric = quantus.FaithfulnessCorrelation(nr_runs=10, subset_size=8, disable_warnings=True,
                                             return_aggregate=False)
    scores = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a_batch, device="cpu")
    assert len(scores) == 4 and all(-1 <= s <= 1 for s in scores)


# --------------------------------------------------------------------------------------------------
# Captum layer attributions: upsampled to the input size, reduced to B×1×H×W
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pooled_cnn():
    """A CNN whose conv feature map (4×4) is smaller than the 8×8 input, so upsampling matters."""
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
    ).eval()
    return model, torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])


def test_layer_gradcam_is_upsampled_with_captums_interpolate(pooled_cnn):
    captum_attr = pytest.importorskip("captum.attr")
    from freqlens.attribution import GradCAM

    model, x, target = pooled_cnn
    wrapped = CaptumExplainer(captum_attr.LayerGradCam, model, layer="3")  # class + model + layer= passed through
    assert wrapped.attribution.layer is model[3] and not wrapped.per_channel and wrapped.family == "cam"
    maps = wrapped(x, target)
    raw = captum_attr.LayerGradCam(model, model[3]).attribute(x, target=target)
    assert raw.shape == (4, 1, 4, 4) and maps.shape == (4, 1, 8, 8)
    torch.testing.assert_close(maps, captum_attr.LayerAttribution.interpolate(raw, (8, 8), "bilinear"))
    # with Captum's ReLU it is freqlens' GradCAM on the same layer (both bilinear, align_corners=False)
    relu = CaptumExplainer(captum_attr.LayerGradCam(model, model[3]), relu_attributions=True)
    torch.testing.assert_close(relu(x, target), GradCAM(model, layer=model[3])(x, target))


def test_layer_integrated_gradients_channels_are_reduced_after_upsampling(pooled_cnn):
    captum_attr = pytest.importorskip("captum.attr")
    model, x, target = pooled_cnn
    lig = captum_attr.LayerIntegratedGradients(model, model[3])
    raw = lig.attribute(x, target=target, n_steps=8)
    assert raw.shape == (4, 6, 4, 4)
    upsampled = captum_attr.LayerAttribution.interpolate(raw, (8, 8), "bilinear")
    summed = CaptumExplainer(lig, n_steps=8)(x, target)
    assert summed.shape == (4, 1, 8, 8)
    torch.testing.assert_close(summed, upsampled.sum(dim=1, keepdim=True))
    absolute = CaptumExplainer(lig, layer=model[3], layer_reduce="abs_sum", n_steps=8)(x, target)
    torch.testing.assert_close(absolute, upsampled.abs().sum(dim=1, keepdim=True))
    nearest = CaptumExplainer(lig, interpolate_mode="nearest", n_steps=8)(x, target)
    torch.testing.assert_close(nearest, raw.sum(dim=1, keepdim=True).repeat_interleave(2, 2).repeat_interleave(2, 3))
    # a layer map goes through FORGrad and the metrics like any B×1×H×W map
    assert FORGrad(CaptumExplainer(lig, n_steps=8), sigma=2)(x, target).shape == (4, 1, 8, 8)


def test_layer_attribution_errors(pooled_cnn):
    captum_attr = pytest.importorskip("captum.attr")
    model, x, target = pooled_cnn
    with pytest.raises(ValueError, match="no spatial map"):
        CaptumExplainer(captum_attr.LayerGradCam, model, layer=model[6])(x, target)  # the Linear: B×5
    with pytest.raises(ValueError, match="layer= differs"):
        CaptumExplainer(captum_attr.LayerGradCam(model, model[3]), layer=model[0])
    with pytest.raises(ValueError, match="per_channel"):
        CaptumExplainer(captum_attr.LayerGradCam(model, model[3]), per_channel=True)
    with pytest.raises(TypeError, match="needs the model"):
        CaptumExplainer(captum_attr.LayerGradCam, layer="3")
    with pytest.raises(ValueError, match="layer_reduce"):
        CaptumExplainer(captum_attr.LayerGradCam(model, model[3]), layer_reduce="median")
    occlusion = CaptumExplainer(captum_attr.Occlusion(model), sliding_window_shapes=(3, 2, 2))
    assert occlusion.family == "black-box" and occlusion.per_channel


# --------------------------------------------------------------------------------------------------
# Quantus: the README example, and explain_func following the model Quantus passes
# --------------------------------------------------------------------------------------------------
def test_quantus_explain_func_follows_the_model_it_is_given(pooled_cnn):
    import copy

    model, x, target = pooled_cnn
    randomised = copy.deepcopy(model)
    with torch.no_grad():
        randomised[6].weight.normal_()
    expected = to_quantus(FORGrad(Saliency(randomised), sigma=2)(x, target))
    for spec in (FORGrad(Saliency(model), sigma=2), lambda m: FORGrad(Saliency(m), sigma=2)):
        explain = quantus_explain_func(spec)
        np.testing.assert_allclose(explain(randomised, x.numpy(), target.numpy()), expected, rtol=1e-5, atol=1e-7)
    by_name = quantus_explain_func("gradient")  # an alias of saliency, built on each model Quantus passes
    np.testing.assert_allclose(by_name(randomised, x.numpy(), target.numpy()), to_quantus(Saliency(randomised)(x, target)))
    with pytest.raises(ValueError, match="unknown attribution method"):
        quantus_explain_func("no-such-method")


def test_quantus_readme_example_runs(pooled_cnn):
    quantus = pytest.importorskip("quantus")
    model, x, _ = pooled_cnn
    x_batch, y_batch = x.numpy(), model(x).argmax(1).numpy()
    # --- as in the README ("Interoperability") ---
    faithfulness = quantus.FaithfulnessCorrelation(nr_runs=10, subset_size=8, disable_warnings=True,
                                                   return_aggregate=False)
    scores = faithfulness(model=model, x_batch=x_batch, y_batch=y_batch,
                          explain_func=quantus_explain_func("saliency"), device="cpu")
    mprt = quantus.MPRT(disable_warnings=True, return_average_correlation=True)
    randomisation = mprt(model=model, x_batch=x_batch, y_batch=y_batch,
                         explain_func=quantus_explain_func(FORGrad(Saliency(model), sigma=2)), device="cpu")
    # ---
    assert len(scores) == 4 and all(-1 <= s <= 1 for s in scores)
    assert len(randomisation) == 4 and all(np.isfinite(randomisation))
    assert not all(np.isclose(randomisation, 1.0))  # the maps followed the randomised copies Quantus passed
