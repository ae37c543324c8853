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
