"""Explainers by name, for the command line and the analyses (``make_explainer("ig", model)``), and
their settings (``make_explainer("occlusion", model, settings={"patch": 8})``).

A method's **settings** are the keyword arguments of its class (for a noise tunnel: of the tunnel and
of the explainer it wraps) other than the ones the caller supplies (:data:`CALLER_ARGUMENTS`: the model,
the wrapped explainer, ``batch_size``, ``generator``, ``progress``); :func:`method_settings` lists
them with their defaults, :func:`split_settings` sends ``key`` / ``method.key`` settings to the methods
that take them (``--method-args`` of ``freqlens explain`` and ``freqlens evaluate``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from freqlens.utils.output import OutputSelector, SelectOutput

from .base import Explainer
from .gradcam import GradCAM, GradCAMPlusPlus
from .gradient import GradientInput, Saliency
from .hsic import HSICAttribution
from .integrated_gradients import IntegratedGradients
from .noise_tunnel import SmoothGrad, SmoothGradSq, VarGrad
from .occlusion import Occlusion
from .rise import RISE
from .sobol import SobolAttribution

__all__ = [
    "ALIASES",
    "CALLER_ARGUMENTS",
    "METHODS",
    "METHOD_NAMES",
    "MethodSpec",
    "canonical_method",
    "make_explainer",
    "method_settings",
    "split_settings",
]

#: Constructor arguments the caller supplies, never settings.
CALLER_ARGUMENTS = frozenset({"self", "model", "explainer", "batch_size", "generator", "progress"})


@dataclass(frozen=True)
class MethodSpec:
    """How the registry builds a method: ``explainer(model, **defaults)``, or for a wrapper (noise
    tunnels) ``explainer(inner(model), **defaults)``.

    Attributes:
        explainer: the explainer class.
        defaults: the registry's settings that differ from the class defaults (seed 001 where it gives
            them).
        inner: for a wrapper, the class of the wrapped explainer; else ``None``.
    """

    explainer: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    inner: type | None = None


#: canonical name -> how to build it
METHODS: dict[str, MethodSpec] = {
    "saliency": MethodSpec(Saliency),
    "gradient_input": MethodSpec(GradientInput),
    "integrated_gradients": MethodSpec(IntegratedGradients, {"steps": 50}),
    "smoothgrad": MethodSpec(SmoothGrad, {"n": 50}, inner=Saliency),
    "smoothgrad_sq": MethodSpec(SmoothGradSq, {"n": 50}, inner=Saliency),
    "vargrad": MethodSpec(VarGrad, {"n": 50}, inner=Saliency),
    "gradcam": MethodSpec(GradCAM),
    "gradcam_pp": MethodSpec(GradCAMPlusPlus),
    "occlusion": MethodSpec(Occlusion),
    "rise": MethodSpec(RISE),
    "sobol": MethodSpec(SobolAttribution),
    "hsic": MethodSpec(HSICAttribution),
}

ALIASES = {
    "gradient": "saliency",
    "gradients": "saliency",
    "input_gradients": "saliency",
    "gxi": "gradient_input",
    "grad_input": "gradient_input",
    "ig": "integrated_gradients",
    "sg": "smoothgrad",
    "sg2": "smoothgrad_sq",
    "smoothgrad2": "smoothgrad_sq",
    "gradcam++": "gradcam_pp",
    "gradcampp": "gradcam_pp",
    "gradcamplusplus": "gradcam_pp",
}

METHOD_NAMES = tuple(METHODS)


def canonical_method(name: str) -> str:
    """The canonical method name for ``name`` (case, ``-`` and aliases tolerated); ValueError if unknown."""
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in METHODS:
        raise ValueError(f"unknown attribution method {name!r}; choose from {', '.join(METHOD_NAMES)}")
    return key


def _keywords(cls: type) -> dict[str, Any]:
    """``{name: default}`` of the settings among ``cls``'s constructor arguments (in signature order;
    ``inspect.Parameter.empty`` for a required one)."""
    parameters = inspect.signature(cls.__init__).parameters
    return {name: parameter.default for name, parameter in parameters.items()
            if name not in CALLER_ARGUMENTS
            and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def method_settings(name: str) -> dict[str, Any]:
    """The settings method ``name`` accepts and their registry defaults (``None`` where the explainer
    chooses from the input size, e.g. Occlusion's ``patch``), read from the constructor signatures: for a
    noise tunnel the tunnel's (``n``, ``noise_level``, ...) then the wrapped explainer's (``abs``,
    ``score``)."""
    spec = METHODS[canonical_method(name)]
    settings = _keywords(spec.explainer)
    if spec.inner is not None:
        settings.update({key: value for key, value in _keywords(spec.inner).items() if key not in settings})
    settings.update(spec.defaults)
    return settings


def _describe(name: str) -> str:
    return ", ".join(method_settings(name)) or "none"


def _check_keys(name: str, settings: Mapping[str, Any]) -> None:
    accepted = method_settings(name)
    unknown = [key for key in settings if key not in accepted]
    if unknown:
        raise ValueError(f"{name} does not take the setting{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; its settings: {_describe(name)}")


def split_settings(settings: Mapping[str, Any], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per method of ``methods``, the settings of ``settings`` that go to it.

    Args:
        settings: keys are ``key`` (every method of ``methods`` that takes ``key``; an error when none
            does) or ``method.key`` (that method only, which must be among ``methods`` and take ``key``;
            it wins over a plain ``key``). Method names may be aliases (``ig.steps``).
        methods: the method names (or aliases).

    Returns:
        ``{canonical method name: {setting: value}}`` for every method of ``methods``.

    Raises:
        ValueError: An unknown method, a method not among ``methods``, or a setting no method takes (the
            message lists the accepted settings).
    """
    names = [canonical_method(method) for method in methods]
    plain = {key: value for key, value in settings.items() if "." not in key}
    scoped: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        if "." not in key:
            continue
        scope, _, setting = key.rpartition(".")
        method = canonical_method(scope)
        if method not in names:
            raise ValueError(f"setting {key!r} is for {method}, which is not among the methods "
                             f"({', '.join(names)})")
        _check_keys(method, {setting: value})
        scoped.setdefault(method, {})[setting] = value
    for key in plain:
        if not any(key in method_settings(name) for name in names):
            if len(names) == 1:
                _check_keys(names[0], {key: None})
            raise ValueError(f"no method among {', '.join(names)} takes the setting {key!r}; their settings: "
                             + "; ".join(f"{name}: {_describe(name)}" for name in names))
    out = {}
    for name in names:
        accepted = method_settings(name)
        out[name] = {key: value for key, value in plain.items() if key in accepted} | scoped.get(name, {})
    return out


def make_explainer(
    name: str, model: nn.Module, *, batch_size: int | None = None, generator: torch.Generator | None = None,
    output: OutputSelector | None = None, settings: Mapping[str, Any] | None = None,
) -> Explainer:
    """Build the explainer called ``name`` around ``model``, with the library's default settings updated
    from ``settings``.

    Args:
        name: A method name or alias (see :data:`METHOD_NAMES`).
        model: The classifier.
        batch_size: Max images per forward pass.
        generator: Random stream of the stochastic methods.
        output: For a model returning a tuple/dict: the index, key or callable that picks its logits (the
            explainer then sees ``freqlens.models.SelectOutput(model, output)``).
        settings: Keyword arguments of the method (:func:`method_settings`), e.g. ``{"patch": 8,
            "stride": 4}`` for Occlusion or ``{"n": 20, "noise_level": 0.1}`` for SmoothGrad.

    Returns:
        The explainer, its :attr:`~freqlens.attribution.Explainer.label` set to the canonical name.

    Raises:
        ValueError: An unknown method or setting (the message lists the accepted ones), or a value the
            explainer refuses.
    """
    name = canonical_method(name)
    spec = METHODS[name]
    settings = dict(settings or {})
    _check_keys(name, settings)
    if output is not None:
        model = SelectOutput(model, output)
    outer_keys = _keywords(spec.explainer)
    outer = {**spec.defaults, **{key: value for key, value in settings.items() if key in outer_keys}}
    inner = {key: value for key, value in settings.items() if key not in outer_keys}
    caller = inspect.signature(spec.explainer.__init__).parameters
    if "batch_size" in caller:
        outer["batch_size"] = batch_size
    if "generator" in caller:
        outer["generator"] = generator
    try:
        if spec.inner is not None:
            explainer = spec.explainer(spec.inner(model, **inner), **outer)
        else:
            explainer = spec.explainer(model, **outer)
    except TypeError as error:
        if not settings:
            raise
        raise ValueError(f"{name}: {error}") from None  # a setting of the wrong kind (text for a number)
    explainer.label = name
    return explainer
