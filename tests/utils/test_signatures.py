"""``forwards_options``: a variant's ``**options`` show as the parameters of the callable they go to."""

from __future__ import annotations

import inspect

import pytest
import torch

from freqlens.attacks import PGD, LowFrequencyPGD
from freqlens.attribution import (
    FORGrad,
    HSICAttribution,
    IntegratedGradients,
    Saliency,
    SobolAttribution,
    VarGrad,
    forgrad_filter,
    input_gradients,
)
from freqlens.attribution.integrated_gradients import integration_points
from freqlens.attribution.noise_tunnel import NoiseTunnel
from freqlens.attribution.registry import make_explainer, method_settings
from freqlens.attribution.sobol import CellMaskExplainer
from freqlens.metrics import (
    deletion,
    insertion,
    linearization_curves,
    linearization_residual,
    vii,
    vii_per_image,
)
from freqlens.utils.signatures import bound_arguments, forwards_options

KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY


def _target(a: int, b: float = 2.0, *, c: str = "x") -> str:
    return f"{a} {b} {c}"


def test_the_signature_lists_own_then_forwarded_then_own_keyword_only_parameters():
    @forwards_options(_target)
    def variant(a: int, *, d: bool = True, **options: object) -> str:
        return _target(a, **options) + f" {d}"

    parameters = inspect.signature(variant).parameters
    assert list(parameters) == ["a", "b", "c", "d"]
    assert parameters["b"].kind is KEYWORD_ONLY and parameters["b"].default == 2.0
    assert parameters["b"].annotation == "float"  # the target's annotation, as written there
    assert parameters["c"].default == "x" and parameters["d"].default is True
    assert inspect.signature(variant).return_annotation == "str"
    # the call itself is unchanged: options go where they went
    assert variant(1, b=3.0, c="y", d=False) == "1 3.0 y False"
    with pytest.raises(TypeError, match="unexpected keyword"):
        variant(1, nope=1)


def test_skip_and_a_target_with_its_own_kwargs():
    def target(maps: object, sigma: float, shape: str = "box", **more: object) -> None:
        return None

    @forwards_options(target, skip=("maps",))
    def variant(sigma: float, **options: object) -> None:
        return None

    parameters = inspect.signature(variant).parameters
    assert list(parameters) == ["sigma", "shape", "more"]
    assert parameters["more"].kind is inspect.Parameter.VAR_KEYWORD


def test_args_stand_for_the_targets_required_positional_parameters():
    def target(model: object, inputs: int, target: int | None, extra: float, steps: int = 3, *, tag: str = "t") -> str:
        return f"{inputs} {target} {extra} {steps} {tag}"

    @forwards_options(target)
    def variant(model: object, *args: object, **options: object) -> str:
        return target(model, *args, **options).upper()

    parameters = inspect.signature(variant).parameters
    assert list(parameters) == ["model", "inputs", "target", "extra", "steps", "tag"]
    assert [parameters[name].kind for name in ("inputs", "target", "extra")] == [
        inspect.Parameter.POSITIONAL_OR_KEYWORD] * 3
    assert parameters["steps"].kind is KEYWORD_ONLY and parameters["steps"].default == 3
    assert parameters["target"].annotation == "int | None"
    assert variant(None, 1, 2, 0.5, steps=4, tag="x") == "1 2 0.5 4 X"
    assert inspect.signature(variant).bind(None, 1, 2, 0.5)  # the shown signature accepts the real call
    with pytest.raises(TypeError):
        inspect.signature(variant).bind(None, 1, 2, 0.5, 4)  # a defaulted setting is keyword-only


def test_bound_arguments_fill_in_the_defaults_and_refuse_unknown_ones():
    assert bound_arguments(_target, 1) == {"a": 1, "b": 2.0, "c": "x"}
    assert bound_arguments(_target, 1, c="y") == {"a": 1, "b": 2.0, "c": "y"}
    with pytest.raises(TypeError):
        bound_arguments(_target, 1, d=3)
    with pytest.raises(TypeError):
        bound_arguments(_target)  # a required one missing


def test_integrated_gradients_reads_the_forwarded_rule():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    default = IntegratedGradients(model, steps=3)
    assert default.method == inspect.signature(integration_points).parameters["method"].default
    alphas, weights = integration_points(3, "riemann_left")
    chosen = IntegratedGradients(model, steps=3, method="riemann_left")
    assert chosen.method == "riemann_left" and torch.equal(chosen.alphas, alphas) and torch.equal(chosen.weights, weights)
    with pytest.raises(TypeError):
        IntegratedGradients(model, nope=1)


def test_a_callable_without_options_is_refused():
    with pytest.raises(TypeError, match="no \\*\\*options"):
        forwards_options(_target)(lambda a, b: None)


@pytest.mark.parametrize("variant, target, skip", [
    (SobolAttribution.__init__, CellMaskExplainer.__init__, ()),
    (HSICAttribution.__init__, CellMaskExplainer.__init__, ()),
    (VarGrad.__init__, NoiseTunnel.__init__, ()),
    (LowFrequencyPGD.__init__, PGD.__init__, ()),
    (FORGrad.__init__, forgrad_filter, ("maps",)),
    (deletion, None, ()),
    (insertion, None, ()),
    (linearization_residual, linearization_curves, ()),
    (vii, vii_per_image, ()),
    (IntegratedGradients.__init__, integration_points, ()),
    (input_gradients, Saliency.__init__, ("abs",)),
])
def test_every_variant_shows_the_complete_parameter_list(variant, target, skip):
    """No ``**options`` left in the signature, and every parameter of the target is in it once."""
    parameters = inspect.signature(variant).parameters
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if target is not None:
        expected = [name for name in inspect.signature(target).parameters if name not in (*skip, "self")]
        assert set(expected) <= set(parameters)


def test_deletion_and_insertion_take_the_same_settings():
    assert inspect.signature(deletion) == inspect.signature(insertion)


def test_the_registry_and_repr_see_the_forwarded_settings():
    """Settings read from constructor signatures (registry, ``repr``) include the forwarded ones."""
    assert {"perturbation", "blur_sigma", "score", "grid", "nb_design"} <= set(method_settings("sobol"))
    assert {"sampler", "perturbation", "score"} <= set(method_settings("hsic"))
    assert {"unbiased", "noise_level", "n"} <= set(method_settings("vargrad"))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    sobol = make_explainer("sobol", model, settings={"perturbation": "blur", "grid": 2})
    assert sobol.perturbation == "blur" and "perturbation='blur'" in repr(sobol)
    assert "unbiased=True" in repr(VarGrad(Saliency(model), n=3, unbiased=True))
    assert "channel_reduction='max_abs'" in repr(FORGrad(Saliency(model), 2.0, channel_reduction="max_abs"))
    with pytest.raises(TypeError):
        FORGrad(Saliency(model), 2.0, bogus=1)
