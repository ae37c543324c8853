"""Model-randomisation sanity check (Adebayo et al. 2018): freqlens.metrics.model_randomization."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from freqlens.attribution import FORGrad, GradCAM, Saliency, SmoothGrad
from freqlens.metrics import SanityResult, model_randomization, randomization_layers
from freqlens.metrics.sanity import bind_explainer, spearman, ssim


def _quadrant_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """12×12 images, class = the quadrant holding a bright square (a task a tiny CNN learns in seconds)."""
    y = torch.randint(0, 4, (n,), generator=generator)
    x = torch.rand(n, 3, 12, 12, generator=generator) * 0.3
    for i, label in enumerate(y.tolist()):
        r, c = divmod(label, 2)
        x[i, :, 6 * r + 1:6 * r + 5, 6 * c + 1:6 * c + 5] += 0.6
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(72, 4),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        x, y = _quadrant_data(64, generator)
        loss = nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    x, y = _quadrant_data(8, generator)
    assert (model(x).argmax(1) == y).float().mean() >= 0.75  # trained-ish
    return model, x, y


def _seed(value: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(value)


# --------------------------------------------------------------------------------------------------
# Similarities
# --------------------------------------------------------------------------------------------------
def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    generator = _seed(0)
    a = torch.randn(5, 60, generator=generator)
    b = 0.5 * a + torch.randn(5, 60, generator=generator)
    a[:, :20] = a[:, :20].round()  # ties, averaged as in scipy
    b = (b * 2).round() / 2
    ours = spearman(a, b)
    expected = torch.tensor([stats.spearmanr(a[i].numpy(), b[i].numpy())[0] for i in range(5)], dtype=torch.float64)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(spearman(a.view(5, 6, 10), b.view(5, 6, 10)), ours)  # any trailing shape
    assert torch.allclose(spearman(a, a), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(spearman(a, -a), -torch.ones(5, dtype=torch.float64))


def test_spearman_of_a_constant_map_is_zero_with_a_warning():
    a = torch.randn(2, 10)
    b = a.clone()
    b[1] = 3.0
    with pytest.warns(RuntimeWarning, match="constant map"):
        corr = spearman(a, b)
    assert corr[0] == pytest.approx(1.0) and corr[1] == 0.0


def test_ssim_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    generator = _seed(0)
    a = torch.rand(3, 16, 13, generator=generator, dtype=torch.float64)
    b = a + 0.3 * torch.rand(3, 16, 13, generator=generator, dtype=torch.float64)
    ours = ssim(a * 5 - 1, b)  # maps are min–max normalised first: a's scale and offset do not matter
    def normalise(m: torch.Tensor) -> np.ndarray:
        return ((m - m.min()) / (m.max() - m.min())).numpy()

    expected = [metrics.structural_similarity(normalise(a[i]), normalise(b[i]), data_range=1.0) for i in range(3)]
    torch.testing.assert_close(ours, torch.tensor(expected, dtype=torch.float64), rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(ssim(a, a), torch.ones(3, dtype=torch.float64))


# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------
def test_default_layers_are_parameterised_modules_top_down(trained):
    model, x, _ = trained
    assert randomization_layers(model, x) == ["6", "2", "0"]


def test_uncalled_parameterised_modules_sit_above_their_parent():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(3, 8, 4, stride=4)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)  # out_proj's weights used functionally
            self.pos = nn.Parameter(torch.zeros(1, 9, 8))
            self.head = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = self.embed(x).flatten(2).transpose(1, 2) + self.pos
            return self.head(self.attn(tokens, tokens, tokens)[0].mean(1))

    assert randomization_layers(Block(), torch.rand(1, 3, 12, 12)) == ["head", "attn.out_proj", "attn", "embed", ""]


# --------------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------------
def test_saliency_fails_to_survive_randomisation_and_model_is_untouched(trained):
    model, x, y = trained
    state = {key: value.clone() for key, value in model.state_dict().items()}
    result = model_randomization(model, x, y, Saliency, generator=_seed(), ssim=True)
    assert isinstance(result, SanityResult)
    assert result.layers == ["6", "2", "0"] and result.rank_correlation.shape == (3, 8)
    torch.testing.assert_close(result.reference, torch.ones(8, dtype=torch.float64))  # un-randomised: 1
    torch.testing.assert_close(result.reference_ssim, torch.ones(8, dtype=torch.float64))
    assert result.mean()[-1] < 0.5 and float(result.rank_correlation.abs().max()) < 0.9  # every layer: far below 1
    assert result.ssim is not None and result.ssim.shape == (3, 8) and float(result.ssim.mean()) < 0.5
    # the user's model: same weights, same object state, eval flags as they were
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[key], value) for key, value in state.items())
    assert not model.training
    json.dumps(result.to_dict())
    assert result.to_dict()["layers"] == ["6", "2", "0"]


def test_an_edge_detector_keeps_correlation_one(trained):
    """Maps that do not depend on the weights (the input itself, or its gradient image): the check's target."""
    model, x, y = trained

    class EdgeDetector:
        def __init__(self, model: nn.Module) -> None:
            self.model = model

        def attribute(self, inputs: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
            gray = inputs.mean(dim=1, keepdim=True)
            dx = torch.nn.functional.pad(gray[..., :, 1:] - gray[..., :, :-1], (0, 1))
            dy = torch.nn.functional.pad(gray[..., 1:, :] - gray[..., :-1, :], (0, 0, 0, 1))
            return (dx**2 + dy**2).sqrt()

    for explainer in (EdgeDetector, EdgeDetector(model)):
        result = model_randomization(model, x, y, explainer, generator=_seed(), ssim=True)
        torch.testing.assert_close(result.rank_correlation, torch.ones(3, 8, dtype=torch.float64))
        torch.testing.assert_close(result.ssim, torch.ones(3, 8, dtype=torch.float64))


def test_forgrad_wrapped_maps_depend_on_the_weights(trained):
    model, x, y = trained
    instance = FORGrad(Saliency(model), sigma=2)
    by_instance = model_randomization(model, x, y, instance, generator=_seed())
    by_factory = model_randomization(model, x, y, lambda m: FORGrad(Saliency(m), sigma=2), generator=_seed())
    torch.testing.assert_close(by_instance.rank_correlation, by_factory.rank_correlation)
    assert instance.model is model  # the instance was rebound to a copy, not changed
    torch.testing.assert_close(by_instance.reference, torch.ones(8, dtype=torch.float64))
    assert by_instance.mean()[-1] < 0.5


def test_rebinding_follows_layers_held_by_the_explainer(trained):
    model, x, y = trained
    copied = copy.deepcopy(model)
    bound = bind_explainer(GradCAM(model, layer=model[2]), copied)
    assert bound.model is copied and bound.layer is copied[2]
    captum_attr = pytest.importorskip("captum.attr")
    from freqlens.interop import CaptumExplainer

    # a Captum layer method (GradCAM without ReLU: this model's CAMs are negative) keeps its layer
    instance = CaptumExplainer(captum_attr.LayerGradCam(model, model[3]))
    rebound = bind_explainer(instance, copied)
    assert rebound.attribution.forward_func is copied and rebound.attribution.layer is copied[3]
    by_instance = model_randomization(model, x, y, instance, generator=_seed())
    by_factory = model_randomization(model, x, y, lambda m: CaptumExplainer(captum_attr.LayerGradCam(m, m[3])),
                                     generator=_seed())
    torch.testing.assert_close(by_instance.rank_correlation, by_factory.rank_correlation)
    torch.testing.assert_close(by_instance.reference, torch.ones(8, dtype=torch.float64))
    assert by_instance.mean()[-1] < 0.8  # once the layer itself is randomised


def test_seeded_batch_size_free_and_independent_mode(trained):
    model, x, y = trained
    first = model_randomization(model, x, y, Saliency, generator=_seed(3))
    torch.testing.assert_close(model_randomization(model, x, y, Saliency, generator=_seed(3)).rank_correlation,
                               first.rank_correlation)
    torch.testing.assert_close(model_randomization(model, x, y, Saliency, generator=_seed(3), batch_size=3)
                               .rank_correlation, first.rank_correlation)
    rng_state = torch.get_rng_state()
    model_randomization(model, x, y, Saliency, generator=_seed(3))
    assert torch.equal(torch.get_rng_state(), rng_state)  # reset_parameters ran under a forked, seeded RNG
    independent = model_randomization(model, x, y, Saliency, layers=[model[6], "0"], cascading=False,
                                      generator=_seed(3))
    assert independent.layers == ["6", "0"] and not independent.to_dict()["order"].startswith("cascading")
    # the first step is the same in both modes; the bottom layer alone leaves the top intact
    torch.testing.assert_close(independent.rank_correlation[0], first.rank_correlation[0])
    assert independent.mean()[1] > first.mean()[2]


def test_stochastic_explainer_reference_is_its_noise_floor(trained):
    model, x, y = trained
    generator = _seed(5)
    smooth = SmoothGrad(Saliency(model), n=4, noise_level=0.5, generator=generator)
    before = generator.get_state().clone()
    result = model_randomization(model, x, y, smooth, generator=_seed())
    assert not torch.equal(generator.get_state(), before)  # draws came from the explainer's own generator
    assert float(result.reference.max()) < 1.0 and float(result.reference.mean()) > 0.8
    assert result.mean()[-1] < 0.5


def test_errors(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="unknown layer"):
        model_randomization(model, x, y, Saliency, layers=["nope"])
    with pytest.raises(TypeError, match="explainer"):
        model_randomization(model, x, y, 3)
    with pytest.raises(TypeError, match="not an explainer"):
        model_randomization(model, x, y, lambda m: m)
    with pytest.raises(ValueError, match="not a sub-module"):
        model_randomization(model, x, y, Saliency, layers=[nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="differ"):
        bind_explainer(Saliency(model), nn.Sequential(nn.Linear(2, 2)))
