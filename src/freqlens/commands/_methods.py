"""What ``explain`` and ``evaluate`` share as commands that run attribution methods on drawn images: their
flags (:func:`add_method_run_flags`, with ``--method-args``: the explainers' settings on the command line)
and the preparation before the long work (:func:`prepare_method_run`: the model runs on the images, the
planned-passes line of each method, FORGrad's σ).

``--method-args KEY=VALUE ...`` reads values with :func:`freqlens.utils.keyvalue.parse_key_values` (the
parser of ``--model-args``); :func:`freqlens.attribution.registry.split_settings` sends a bare ``key`` to
every method that takes it and ``method.key`` to that method only, and refuses a setting no method
takes, naming the accepted ones (read from the explainers' constructors).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from freqlens.commands._common import (
    ImageDraw,
    add_forgrad_flags,
    add_image_run_flags,
    add_shard_flag,
    progress_enabled,
    shared_among_ranks,
)
from freqlens.errors import FreqlensError

if TYPE_CHECKING:
    from freqlens.analysis.forgrad_setting import ForgradSetting

METHOD_ARGS_HELP = {
    False: "settings of the method, e.g. patch=8 stride=4 (occlusion), n_masks=2000 (rise), steps=32 (ig), "
           "layer=layer4 (gradcam), n=20 noise_level=0.1 (smoothgrad); values read as Python literals, "
           "else kept as text; an unknown key lists the method's settings",
    True: "settings of the methods: KEY=VALUE goes to every method that takes KEY, METHOD.KEY=VALUE to that "
          "method only (e.g. rise.n_masks=2000 occlusion.patch=8 steps=32); values read as Python literals, "
          "else kept as text; an unknown key lists the methods' settings",
}


def add_method_args_flag(parser: argparse.ArgumentParser, *, several: bool) -> None:
    """``--method-args KEY=VALUE ...`` (attribute ``method_args``); ``several``: the command evaluates
    several methods (``METHOD.KEY`` scopes a setting)."""
    parser.add_argument("--method-args", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help=METHOD_ARGS_HELP[several])


def add_method_run_flags(parser: argparse.ArgumentParser, *, several: bool, n_images: int,
                         n_images_help: str | None = None, forgrad: str | None, forgrad_help: str, calibration: int,
                         calibration_help: str, shard_what: str = "results") -> None:
    """The flags of a command that runs attribution methods on drawn images, defined once: those of
    :func:`~freqlens.commands._common.add_image_run_flags`, ``--method-args`` (:func:`add_method_args_flag`),
    the FORGrad flags (:func:`~freqlens.commands._common.add_forgrad_flags`) and ``--shard-size`` (8 images).

    Args:
        parser: the sub-command's parser.
        several: the command runs several methods (``evaluate``) rather than one (``explain``).
        n_images, n_images_help: the default and help of ``--n-images``.
        forgrad, forgrad_help: the default (``"auto"`` or ``None``) and help of ``--forgrad``.
        calibration, calibration_help: the default and help of ``--calibration``.
        shard_what: what depends on ``--shard-size`` (its help text).
    """
    add_image_run_flags(parser, n_images=n_images, n_images_help=n_images_help)
    add_method_args_flag(parser, several=several)
    add_forgrad_flags(parser, default=forgrad, forgrad_help=forgrad_help, calibration=calibration,
                      calibration_help=calibration_help)
    add_shard_flag(parser, 8, shard_what)


def method_settings_from_args(args: argparse.Namespace, methods: list[str]) -> dict[str, dict[str, Any]]:
    """``{method: settings}`` for the canonical ``methods`` from ``--method-args``.

    Raises:
        FreqlensError: A malformed item, or a setting no (or not that) method takes.
    """
    from freqlens.attribution.registry import split_settings
    from freqlens.utils.keyvalue import parse_key_values

    settings = parse_key_values(getattr(args, "method_args", None) or [], what="--method-args item", scoped=True)
    try:
        return split_settings(settings, methods)
    except ValueError as error:
        raise FreqlensError(f"--method-args: {error}") from None


def planned_line(name: str, explainer: object, height: int, width: int, images: int) -> tuple[str, dict] | None:
    """``("NAME: F forward passes per image, T in all", record)`` for ``explainer`` on ``images`` images of
    ``height×width`` (forward and backward when it back-propagates); ``None`` when it does not say."""
    from freqlens.attribution.base import planned_passes

    plan = planned_passes(explainer, height, width)
    if plan is None:
        return None
    record = {"forward_per_image": plan.forward, "backward_per_image": plan.backward, "images": images,
              "forward": plan.forward * images, "backward": plan.backward * images}
    last = plan.backward or plan.forward
    kinds = f"{plan.forward:,} forward and {plan.backward:,} backward" if plan.backward else f"{plan.forward:,} forward"
    totals = (f"{plan.forward * images:,} and {plan.backward * images:,}" if plan.backward
              else f"{plan.forward * images:,}")
    text = f"{name}: {kinds} {'pass' if last == 1 else 'passes'} per image, {totals} in all"
    return text, record


def check_model_runs(model, images, method: str) -> None:
    """One forward pass of one image (not counted): a model that cannot run on the images fails with its
    one-line error (``METHOD: MESSAGE``) before any line about the planned work is printed."""
    import torch

    from freqlens.attribution.base import predict, uncounted

    try:
        with torch.no_grad(), uncounted():
            predict(model, images[:1])
    except ValueError as error:
        raise FreqlensError(f"{method}: {error}") from None


def announce_passes(args: argparse.Namespace, name: str, explainer: object, height: int, width: int,
                    images: int) -> dict | None:
    """Print the planned passes of one method on stderr (``freqlens: occlusion: 226 forward passes per
    image, 3,616 in all``), unless ``--quiet`` (or not rank 0); return the record for the JSON output."""
    planned = planned_line(name, explainer, height, width, images)
    if planned is None:
        return None
    text, record = planned
    if progress_enabled(args):
        print(f"freqlens: {text}", file=sys.stderr)
    return record


def prepare_method_run(args: argparse.Namespace, draw: ImageDraw, explainers: Sequence[tuple[str, object]], *,
                       seeds: dict[str, int], settings: dict[str, dict], **forgrad_options: Any,
                       ) -> tuple[dict[str, dict | None], ForgradSetting]:
    """Before the long work of ``explain`` / ``evaluate``: check that the model runs on the drawn images, print
    each method's planned passes (on the drawn and the held-out images) and choose FORGrad's σ per method
    (``--forgrad``; the σ* searches of ``auto`` shared among the ranks).

    Args:
        args: the command's flags.
        draw: the model and images (:func:`~freqlens.commands._common.draw_images`).
        explainers: ``(method, explainer)`` pairs, in order.
        seeds: method -> seed of its σ* search.
        settings: method -> its ``--method-args`` settings.
        **forgrad_options: more settings of :func:`~freqlens.analysis.forgrad_setting.forgrad_setting`
            (``shape``, ``steps``).

    Returns:
        Method -> its planned-passes record (``None`` when it does not say), and the FORGrad setting.

    Raises:
        FreqlensError: the model fails on the images, or a method cannot plan its passes (``METHOD: ...``).
    """
    from freqlens.analysis.forgrad_setting import forgrad_setting

    names = [name for name, _ in explainers]
    check_model_runs(draw.model, draw.images, names[0])
    planned = {}
    for name, explainer in explainers:
        try:
            planned[name] = announce_passes(args, name, explainer, *draw.images.shape[-2:], draw.needed)
        except ValueError as error:
            raise FreqlensError(f"{name}: {error}") from None
    chosen = forgrad_setting(args.forgrad, names, draw.model, draw.calibration, seeds=seeds, settings=settings,
                             mode=args.forgrad_mode, batch_size=args.batch_size, progress=progress_enabled(args),
                             share=shared_among_ranks, **forgrad_options)
    return planned, chosen
