"""Model-randomisation sanity check of attribution maps (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

An explanation that is faithful to the model must change when the model's weights are destroyed.
:func:`model_randomization` computes the maps of the trained model, then re-initialises its layers one
after another, **cascading from the top** (the logits) down to the input, and after each step compares
the new maps with the original ones, per image:

* **Spearman rank correlation** of the channel-reduced maps (:func:`spearman`: Pearson correlation of the
  ranks, ties given their average rank as in ``scipy.stats.spearmanr``; vectorised over images in torch);
* optionally **SSIM** (:func:`ssim`, Wang et al. 2004, computed as ``skimage.metrics.structural_similarity``
  with its defaults on min–max normalised maps).

A map that still correlates with the original after every layer is randomised does not depend on what
the model learned (an edge detector passes every image through unchanged: correlation 1 at every step):
the failure the check is designed to expose. With ``absolute=True`` (the paper's main setting) the maps
are reduced by the sum of absolute values over channels, else by the signed sum.

The user's model is never modified: the check works on a deep copy (eval mode for the explainer calls,
every module's training flag restored). The explainer is given as a factory ``model -> explainer``, an
explainer class (``Saliency``) or an explainer instance, which is rebound to the copy
(:func:`bind_explainer`), so any explainer works, wrappers included (``FORGrad(SmoothGrad(Saliency(m)))``).

Layering: like the rest of :mod:`freqlens.metrics`, this module uses explainers only through their
protocol (``explainer.attribute(inputs, target)``) and imports nothing of :mod:`freqlens.attribution`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from freqlens.utils.tensors import (
    check_images,
    check_model,
    check_model_and_images,
    chunks,
    eval_mode,
    resolve_target,
)

from .faithfulness import check_attributions, row_correlation

__all__ = [
    "SanityResult",
    "bind_explainer",
    "model_randomization",
    "randomization_layers",
    "spearman",
    "ssim",
]

ExplainerSpec = object  # a factory ``model -> explainer``, an explainer class, or an explainer instance


# --------------------------------------------------------------------------------------------------
# Similarities (rows = images)
# --------------------------------------------------------------------------------------------------
def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b``.

    Ranks with ties averaged (``scipy.stats.rankdata(method="average")``), then the Pearson correlation of
    the ranks in float64: equal to ``scipy.stats.spearmanr`` per row. Rows where either map is constant
    have no defined correlation; they get 0 (the map does not resemble the other) and a ``RuntimeWarning``.

    Args:
        a: ``B×N`` or ``B×…`` values (flattened per row).
        b: the same shape as ``a``.

    Returns:
        ``Tensor[B]`` (float64).

    Raises:
        TypeError: ``a`` or ``b`` is not a tensor.
        ValueError: different shapes, or fewer than 2 dims.
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("spearman expects two tensors")
    if a.shape != b.shape or a.dim() < 2:
        raise ValueError(f"spearman expects two B×N tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a = a.detach().reshape(a.shape[0], -1)
    return row_correlation(a, b.detach().reshape(b.shape[0], -1).to(a.device), "spearman",
                            "model_randomization: {n} constant map(s); their rank correlation is undefined and "
                            "set to 0")


def _minmax(maps: Tensor) -> Tensor:
    """Per-image min–max normalisation of ``B×H×W`` maps to [0, 1] (a constant map becomes zeros)."""
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - low
    span = torch.where(span > 0, span, torch.ones_like(span))
    return ((flat - low) / span).reshape(maps.shape)


def ssim(a: Tensor, b: Tensor, window: int = 7) -> Tensor:
    """Structural similarity of ``B×H×W`` maps, per image, after min–max normalisation of each map to [0, 1].

    The definition of ``skimage.metrics.structural_similarity(a, b, data_range=1)`` with its defaults
    (uniform ``window×window`` window, sample covariances, ``K1 = 0.01``, ``K2 = 0.03``, mean over the
    positions where the window fits in the image).

    Args:
        a: ``B×H×W`` maps.
        b: ``B×H×W`` maps, compared with ``a`` image by image.
        window: side of the uniform window: odd, ≥ 3 and no larger than the maps.

    Returns:
        ``Tensor[B]`` (float64).

    Raises:
        ValueError: shapes differ or are not ``B×H×W``, or a bad ``window``.
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"ssim expects two B×H×W tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if window < 2 or window % 2 == 0 or window > min(a.shape[-2:]):
        raise ValueError(f"ssim needs an odd window >= 3 no larger than the maps ({tuple(a.shape[-2:])}), got {window}")
    x = _minmax(a.detach().double())[:, None]
    y = _minmax(b.detach().to(a.device).double())[:, None]

    def local_mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t, window, stride=1)

    n = window * window
    correction = n / (n - 1)  # sample covariance, as skimage's default
    mx, my = local_mean(x), local_mean(y)
    vx = correction * (local_mean(x * x) - mx * mx)
    vy = correction * (local_mean(y * y) - my * my)
    vxy = correction * (local_mean(x * y) - mx * my)
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


_ssim = ssim  # model_randomization's ``ssim`` flag shadows the function inside it


# --------------------------------------------------------------------------------------------------
# Explainers bound to a model
# --------------------------------------------------------------------------------------------------
def _shared_generators(obj: object, memo: dict[int, object], seen: set[int], depth: int = 0) -> None:
    """Put every ``torch.Generator`` reachable from ``obj`` into ``memo`` as itself (shared, not copied)."""
    if depth > 8 or id(obj) in seen or isinstance(obj, (nn.Module, Tensor, str, bytes, int, float)):
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Generator):
        memo[id(obj)] = obj
        return
    if isinstance(obj, dict):
        values: object = list(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        values = list(obj)
    elif hasattr(obj, "__dict__"):
        values = list(vars(obj).values())
    else:
        return
    for value in values:  # type: ignore[union-attr]
        _shared_generators(value, memo, seen, depth + 1)


def bind_explainer(explainer: ExplainerSpec, model: nn.Module) -> object:
    """An explainer of ``model`` from a factory, an explainer class or an explainer instance.

    * a class (``Saliency``) is called as ``cls(model)``; any other callable without an ``attribute``
      method as ``factory(model)`` (``lambda m: FORGrad(SmoothGrad(Saliency(m)), sigma=2)``);
    * an explainer instance (anything with ``attribute``) built around another model with the same
      module structure (a copy of it, e.g. with randomised weights) is **rebound**: deep-copied with every
      module, parameter and buffer of its model replaced by the one of the same name in ``model``, so
      layers held by the explainer (GradCAM's, a Captum layer method's) follow; its random generators
      are shared, not copied (draws continue). An explainer of ``model`` itself is returned unchanged.

    Args:
        explainer: a factory ``model -> explainer``, an explainer class or an explainer instance (see
            above).
        model: the model the explainer must explain.

    Returns:
        The explainer (anything with an ``attribute`` method).

    Raises:
        TypeError: ``model`` is not a module, ``explainer`` is none of the above, a factory that does not
            return an explainer, or an instance without a ``.model`` to rebind.
        ValueError: the explainer's model and ``model`` differ in module structure.
    """
    check_model(model)
    if isinstance(explainer, type) or not callable(getattr(explainer, "attribute", None)):
        if not callable(explainer):
            raise TypeError(
                "expected an explainer, an explainer class or a factory model -> explainer, "
                f"got {type(explainer).__name__}"
            )
        built = explainer(model)
        if not callable(getattr(built, "attribute", None)):
            raise TypeError(f"the explainer factory returned {type(built).__name__}, not an explainer")
        return built
    old = getattr(explainer, "model", None)
    if old is model:
        return explainer
    if not isinstance(old, nn.Module):
        raise TypeError(
            f"cannot rebind {type(explainer).__name__} to another model: it has no .model; "
            "pass a factory model -> explainer instead"
        )
    new_modules = dict(model.named_modules())
    memo: dict[int, object] = {}
    for name, module in old.named_modules():
        if name not in new_modules or type(new_modules[name]) is not type(module):
            raise ValueError(
                f"cannot rebind the explainer: its model and the new model differ at {name or 'the root'!r}; "
                "pass a factory model -> explainer instead"
            )
        memo[id(module)] = new_modules[name]
    new_tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    for name, tensor in [*old.named_parameters(), *old.named_buffers()]:
        if name in new_tensors:
            memo[id(tensor)] = new_tensors[name]
    _shared_generators(explainer, memo, set())
    return copy.deepcopy(explainer, memo)


# --------------------------------------------------------------------------------------------------
# Layers and their re-initialisation
# --------------------------------------------------------------------------------------------------
def _has_own_parameters(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


@torch.no_grad()
def randomization_layers(model: nn.Module, inputs: Tensor) -> list[str]:
    """Names of the modules with parameters of their own, top-down (logits first): the default order.

    The order is the reverse of the order in which the modules are first called in a forward pass of
    ``inputs[:1]`` (eval mode). A module with parameters that is never called (its weights used
    functionally, e.g. ``nn.MultiheadAttention.out_proj``) takes the place of its nearest called parent,
    just above it. The root module, when it holds parameters itself (a ViT's position embedding), is ``""``.

    Args:
        model: the classifier.
        inputs: ``B×C×H×W`` images (only the first one is used).

    Returns:
        Module names, top-down.
    """
    model = check_model(model)
    inputs = check_images(inputs)
    order: dict[int, int] = {}

    def hook(module: nn.Module, args: object) -> None:
        order.setdefault(id(module), len(order))

    named = list(model.named_modules())
    handles = [module.register_forward_pre_hook(hook) for _, module in named]
    try:
        with eval_mode(model):
            model(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    parents = {id(child): module for _, module in named for child in module.children()}
    keyed = []
    for registration, (name, module) in enumerate(named):
        if not _has_own_parameters(module):
            continue
        node, offset = module, 0.0
        while id(node) not in order and id(node) in parents:
            node, offset = parents[id(node)], 0.5
        if id(node) not in order:
            continue
        keyed.append(((order[id(node)] + offset, registration), name))
    return [name for _, name in sorted(keyed, reverse=True)]


@torch.no_grad()
def _reinitialise(module: nn.Module, generator: torch.Generator | None) -> None:
    """Seeded re-initialisation of ``module``'s own parameters (``reset_parameters`` where it has one).

    ``reset_parameters`` draws from the global RNG: it runs under ``torch.random.fork_rng`` seeded from
    ``generator`` (the global RNG state is restored afterwards). Modules without one get
    ``N(0, s²)`` per parameter, ``s`` = the trained tensor's standard deviation (0.01 if it is constant).
    """
    device = generator.device if generator is not None else "cpu"
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=device))
    parameters = list(module.parameters(recurse=False))
    cuda = sorted({p.device.index or 0 for p in parameters if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
            return
        for parameter in parameters:
            std = float(parameter.float().std()) if parameter.numel() > 1 else 0.0
            if not (std > 0 and math.isfinite(std)):
                std = 0.01
            parameter.normal_(0.0, std)


# --------------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SanityResult:
    """Result of :func:`model_randomization`.

    Attributes:
        layers: Randomised modules, in the order of the steps (top-down by default). With
            ``cascading=True`` step ``k`` has layers ``0..k`` randomised, else layer ``k`` only.
        rank_correlation: ``Tensor[L, B]``: Spearman correlation per step and image between the maps of
            the trained model and those of the randomised one.
        reference: ``Tensor[B]``: the same correlation between two runs on the trained model (1 for a
            deterministic explainer; the noise floor of a stochastic one).
        ssim: ``Tensor[L, B]`` when requested, else ``None``.
        reference_ssim: ``Tensor[B]`` when SSIM is requested, else ``None``.
        cascading: the setting used (see :func:`model_randomization`).
        absolute: the setting used (see :func:`model_randomization`).
    """

    layers: list[str]
    rank_correlation: Tensor
    reference: Tensor
    ssim: Tensor | None = None
    reference_ssim: Tensor | None = None
    cascading: bool = True
    absolute: bool = True

    def mean(self) -> Tensor:
        """Mean rank correlation over images per step (``Tensor[L]``)."""
        return self.rank_correlation.mean(dim=1)

    def to_dict(self) -> dict:
        """A JSON-ready dict (lists of floats) with the settings, layers and per-image values."""
        out: dict = {
            "test": "model_randomization",
            "order": "cascading top-down" if self.cascading else "independent",
            "absolute": self.absolute,
            "rank_correlation_method": "spearman, ties averaged",
            "layers": list(self.layers),
            "reference": self.reference.tolist(),
            "rank_correlation": self.rank_correlation.tolist(),
            "mean_rank_correlation": self.mean().tolist(),
        }
        if self.ssim is not None and self.reference_ssim is not None:
            out["reference_ssim"] = self.reference_ssim.tolist()
            out["ssim"] = self.ssim.tolist()
            out["mean_ssim"] = self.ssim.mean(dim=1).tolist()
        return out


def _maps(explainer: object, inputs: Tensor, target: Tensor, batch_size: int, absolute: bool) -> Tensor:
    """Channel-reduced ``B×H×W`` maps, ``batch_size`` images per explainer call."""
    reduce = "abs_sum" if absolute else "sum"
    parts = []
    for part in chunks(inputs.shape[0], batch_size):
        maps = explainer.attribute(inputs[part], target[part])  # type: ignore[attr-defined]
        parts.append(check_attributions(maps, inputs[part], reduce))
    return torch.cat(parts)


def _layer_name(model: nn.Module, layer: str | nn.Module) -> str:
    if isinstance(layer, str):
        return layer
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name
        raise ValueError(f"the layer {type(layer).__name__} is not a sub-module of {type(model).__name__}")
    raise TypeError(f"layers must hold module names or modules of the model, got {type(layer).__name__}")


def model_randomization(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None,
    explainer_factory: ExplainerSpec,
    *,
    layers: Sequence[str] | None = None,
    cascading: bool = True,
    absolute: bool = True,
    ssim: bool = False,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> SanityResult:
    """Model-parameter randomisation test of an explainer (Adebayo et al. 2018).

    Args:
        model: The trained classifier; never modified (the check runs on a deep copy).
        inputs: ``B×C×H×W`` images in [0, 1].
        target: ``LongTensor[B]``, an int, or ``None`` = the trained model's predicted class (kept fixed
            while the weights are randomised).
        explainer_factory: ``model -> explainer`` (``lambda m: FORGrad(Saliency(m), sigma=2)``), an explainer
            class (``Saliency``) or an explainer instance of ``model`` (rebound to the copy, see
            :func:`bind_explainer`).
        layers: Module names (or modules of ``model``) in the order to randomise them (default :func:`randomization_layers`: the
            modules with parameters, top-down from the logits).
        cascading: ``True``: the randomisation accumulates (the paper's cascading test); ``False``: each
            layer alone, the others trained (independent test).
        absolute: Compare ``Σ_c |map|`` (the paper's default) rather than the signed ``Σ_c map``.
        ssim: Also compute :func:`ssim` per step and image.
        generator: Seeds the re-initialisation (each layer's ``reset_parameters`` under a seed drawn from it;
            the global RNG state is restored). Stochastic explainers draw from their own generator.
        batch_size: Images per explainer call (default: all at once; explainers chunk their own passes).
            Deterministic explainers give the same result for any value; a stochastic one draws its noise
            call by call, so its maps follow the split as they would in any loop over batches.
        progress: A tqdm bar over the steps.

    Returns:
        :class:`SanityResult` with per-step, per-image rank correlations (and SSIM).

    Raises:
        ValueError: no layer to randomise, or an unknown layer.
        TypeError: a layer that is neither a name nor a module, or an unusable explainer.
    """
    inputs, chunk = check_model_and_images(model, inputs, batch_size)
    inputs = inputs.detach()
    copied = copy.deepcopy(model)
    names = randomization_layers(copied, inputs) if layers is None else [_layer_name(model, layer) for layer in layers]
    if not names:
        raise ValueError("no layer to randomise: the model has no module with parameters")
    try:
        modules = [copied.get_submodule(name) for name in names]
    except AttributeError as err:
        known = [name for name, _ in model.named_modules() if name]
        raise ValueError(f"unknown layer in {list(names)!r}; known names: {', '.join(known[:30])}") from err
    explainer = bind_explainer(explainer_factory, copied)
    original = {key: value.clone() for key, value in copied.state_dict().items()} if not cascading else None

    with eval_mode(copied):
        target = resolve_target(copied, inputs, target, chunk)
        reference_maps = _maps(explainer, inputs, target, chunk, absolute)
        repeat = _maps(explainer, inputs, target, chunk, absolute)
        reference = spearman(reference_maps, repeat)
        reference_ssim = _ssim(reference_maps, repeat) if ssim else None
        correlations, similarities = [], []
        for module in tqdm(modules, desc="model randomization", unit="layer", leave=False, disable=not progress):
            if original is not None:
                copied.load_state_dict(original)
            _reinitialise(module, generator)
            maps = _maps(explainer, inputs, target, chunk, absolute)
            correlations.append(spearman(reference_maps, maps))
            if ssim:
                similarities.append(_ssim(reference_maps, maps))
    return SanityResult(
        layers=names,
        rank_correlation=torch.stack(correlations),
        reference=reference,
        ssim=torch.stack(similarities) if ssim else None,
        reference_ssim=reference_ssim,
        cascading=bool(cascading),
        absolute=bool(absolute),
    )

