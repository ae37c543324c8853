"""The explainer template: what ``Explainer.attribute`` prepares before ``_attribute``, the family, labels and repr."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from freqlens.attribution import (
    Call,
    Explainer,
    Family,
    FORGrad,
    GradCAM,
    Occlusion,
    Saliency,
    SmoothGrad,
)
from freqlens.attribution import noise_tunnel as noise_tunnel_module
from freqlens.attribution.registry import METHOD_NAMES, make_explainer
from freqlens.errors import InputError

from .test_method_settings import TinyConvNet


class _Recording(Explainer):
    """Implements only ``_attribute`` and keeps what the template handed it."""

    stochastic = True

    def __init__(self, model: nn.Module, batch_size: int | None = None, generator: torch.Generator | None = None):
        super().__init__(model)
        self.batch_size, self.generator = batch_size, generator
        self.calls: list[Call] = []
        self.training_during: list[bool] = []

    def _attribute(self, call: Call) -> torch.Tensor:
        self.calls.append(call)
        self.training_during.append(any(module.training for module in self.model.modules()))
        return call.inputs.clone()


class _OwnTarget(_Recording):
    predicts_target = True


def _images(batch: int = 3) -> torch.Tensor:
    return torch.rand(batch, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_the_template_checks_detaches_enters_eval_mode_and_resolves_the_target_once():
    model = TinyConvNet().train()
    explainer = _Recording(model, batch_size=2)
    images = _images().requires_grad_(True)
    explainer(images)
    call = explainer.calls[-1]
    assert not call.inputs.requires_grad and call.chunk == 2
    assert call.target.dtype == torch.long and torch.equal(call.target, model.eval()(images).argmax(dim=1))
    model.train()
    explainer(images, 1)
    assert explainer.calls[-1].target.tolist() == [1, 1, 1]
    assert explainer.training_during == [False, False] and model.training
    with pytest.raises(InputError, match="pixels in"):
        explainer(images.detach() * 4)
    with pytest.raises(ValueError, match="shape"):
        explainer(images, torch.tensor([0, 1]))


def test_an_explainer_that_predicts_its_own_target_gets_none():
    explainer = _OwnTarget(TinyConvNet())
    explainer(_images())
    assert explainer.calls[-1].target is None
    explainer(_images(), torch.tensor([0, 1, 2]))
    assert explainer.calls[-1].target.tolist() == [0, 1, 2]


def test_the_generator_comes_from_the_call_else_from_the_explainer():
    own, given = torch.Generator(), torch.Generator()
    explainer = _Recording(TinyConvNet(), generator=own)
    explainer(_images())
    explainer(_images(), generator=given)
    assert explainer.calls[0].generator is own and explainer.calls[1].generator is given
    assert explainer.generator is own  # never overwritten


def test_families_compare_to_their_names_and_say_whether_passes_go_backward():
    assert Family.CAM == "cam" and str(Family.BLACK_BOX) == "black-box" and f"{Family.GRADIENT}" == "gradient"
    assert Family.GRADIENT.backward and Family.CAM.backward
    assert not Family.BLACK_BOX.backward and not Family.CONTROL.backward
    model = TinyConvNet()
    assert GradCAM(model).family is Family.CAM and Occlusion(model).family is Family.BLACK_BOX
    assert SmoothGrad(GradCAM(model)).family is Family.CAM


@pytest.mark.parametrize(("inner", "backward"), [(GradCAM, True), (Saliency, True), (Occlusion, False)])
def test_a_noise_tunnel_sizes_its_chunks_for_the_passes_of_the_wrapped_family(monkeypatch, inner, backward):
    """SmoothGrad(GradCAM) back-propagates: its chunks are sized for forward + backward passes."""
    seen = []

    def fake_auto_batch_size(model, inputs, *, backward=True):
        seen.append(backward)
        return 4

    monkeypatch.setattr(noise_tunnel_module, "auto_batch_size", fake_auto_batch_size)
    model = TinyConvNet()
    explainer = inner(model, patch=4) if inner is Occlusion else inner(model)
    SmoothGrad(explainer, n=2, generator=torch.Generator().manual_seed(0))(_images(2), torch.tensor([0, 1]))
    assert seen == [backward]


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_the_label_of_a_registered_method_is_its_registry_name(name):
    explainer = make_explainer(name, TinyConvNet())
    assert explainer.label == name
    assert FORGrad(explainer, sigma=2.0).label == f"{name}*"


def test_labels_default_to_the_class_registry_name_and_can_be_set():
    model = TinyConvNet()
    assert Saliency(model).label == "saliency" and SmoothGrad(Saliency(model)).label == "smoothgrad"
    explainer = Saliency(model)
    explainer.label = "my gradients"
    assert explainer.label == "my gradients" and FORGrad(explainer, 1.0).label == "my gradients*"


def test_repr_is_generated_from_the_settings():
    model = TinyConvNet()
    assert repr(Saliency(model, abs=True, score="prob")) == "Saliency(abs=True, batch_size=auto, score='prob')"
    assert repr(Occlusion(model, patch=4, baseline=torch.zeros(3, 16, 16))) == (
        "Occlusion(patch=(4, 4), stride=auto, baseline=tensor(3, 16, 16), score='logit', batch_size=auto)")
    assert repr(FORGrad(Saliency(model), 3.0)) == (
        "FORGrad(Saliency(abs=False, batch_size=auto, score='logit'), sigma=3.0, shape='box', mode='magnitude', "
        "channel_reduction='mean')")
