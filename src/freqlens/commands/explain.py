"""``freqlens explain``: attribution maps (and FORGrad maps) of N images -> ``OUT/maps.pt``, PNG grids and
``OUT/explain.json``.

The images are explained in work units of ``--shard-size`` images, each with a random stream seeded from
``(seed, unit)``; under ``torchrun`` the units are shared among the processes and merged in image order,
and rank 0 writes the files. ``--forgrad auto`` searches σ* on held-out images of the same draw.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from freqlens.commands._common import distributed_command, draw_images, positive_int, progress_enabled
from freqlens.commands._methods import add_method_run_flags, method_settings_from_args, prepare_method_run
from freqlens.errors import FreqlensError

if TYPE_CHECKING:
    from freqlens.analysis.sigma_search import SigmaSearch


def _explain_units(model: Any, method: str, images: Any, labels: Any, sigma: float | None,
                   args: argparse.Namespace, settings: dict | None = None) -> tuple[Any, Any, Any]:
    """Maps (and FORGrad maps at ``sigma``) of ``images`` computed per work unit of ``--shard-size`` images,
    each with a generator seeded from ``(seed, unit)``; units shared among the ranks, merged in order.
    ``settings``: the method's settings (``--method-args``)."""
    import torch
    from tqdm.auto import tqdm

    from freqlens import distributed
    from freqlens.analysis.explain import explain_images

    units = distributed.work_units(images.shape[0], args.shard_size)

    def step():
        done, bar = [], None
        mine = distributed.shard(list(enumerate(units)))
        for index, unit in mine:
            part = slice(unit.start, unit.stop)
            target = labels[part] if args.target == "label" else None
            try:
                result = explain_images(model, images[part], method, target=target, forgrad=sigma, shape=args.shape,
                                        mode=args.forgrad_mode,
                                        batch_size=args.batch_size, settings=settings,
                                        seed=distributed.stream_seed("freqlens.explain", args.seed, "unit", index))
            except ValueError as error:  # e.g. GradCAM on a model without convolutions
                raise FreqlensError(f"{method}: {error}") from None
            done.append((index, (result.target.cpu(), result.maps.detach().cpu(),
                                 None if result.forgrad_maps is None else result.forgrad_maps.detach().cpu())))
            if bar is None:  # shown from the first finished unit on: a failing method prints only its error line
                bar = tqdm(total=sum(u.stop - u.start for _, u in mine), desc="explain", unit="img",
                           disable=not progress_enabled(args))
            bar.update(unit.stop - unit.start)
        if bar is not None:
            bar.close()
        return done

    parts = distributed.gather_ordered(distributed.run_everywhere(step))
    target = torch.cat([p[0] for p in parts])
    maps = torch.cat([p[1] for p in parts])
    forgrad_maps = None if sigma is None else torch.cat([p[2] for p in parts])
    return target, maps, forgrad_maps


def _explain(args: argparse.Namespace, device: Any) -> int:
    """``freqlens explain``; under torchrun the work units are shared among the ranks and rank 0 writes."""
    from freqlens import distributed
    from freqlens.analysis.explain import Explanation
    from freqlens.attribution.registry import canonical_method, make_explainer

    try:
        method = canonical_method(args.method)
    except ValueError as error:
        raise FreqlensError(str(error)) from None
    settings = method_settings_from_args(args, [method])[method]
    draw = draw_images(args, device)  # with --forgrad auto, σ* on held-out images of the same draw (rank 0)
    model, record, images, labels = draw.model, draw.record, draw.images, draw.labels
    try:
        explainer = make_explainer(method, model, batch_size=args.batch_size, settings=settings)
    except ValueError as error:  # e.g. GradCAM on a model without convolutions, a bad --method-args value
        raise FreqlensError(f"{method}: {error}") from None
    # the passes it will take (on the explained and held-out images), before the long work; σ of --forgrad
    planned, chosen = prepare_method_run(
        args, draw, [(method, explainer)], seeds={method: distributed.stream_seed("freqlens.explain", args.seed, "sigma")},
        settings={method: settings}, shape=args.shape)
    sigma = None if chosen.sigmas is None else chosen.sigmas[method]
    target, maps, forgrad_maps = _explain_units(model, method, images, labels, sigma, args, settings)
    result = Explanation(method=method, images=images.cpu(), target=target, maps=maps, forgrad_maps=forgrad_maps,
                         sigma=sigma, shape=args.shape, mode=args.forgrad_mode)
    search = chosen.searches.get(method)
    # rank 0 writes; a failure there stops every rank at once (instead of the others timing out)
    distributed.run_everywhere(
        lambda: _write_explanation(args, method, images.cpu(), labels.cpu(), result, search, record,
                                   settings=settings, planned=planned[method])
        if distributed.is_main() else None, catch=(FreqlensError, OSError))
    return 0


def _write_explanation(args: argparse.Namespace, method: str, images: Any, labels: Any, result: Any,
                       search: SigmaSearch | None, record: dict, *, settings: dict | None = None,
                       planned: dict | None = None) -> None:
    """OUT/maps.pt, the PNG grids and OUT/explain.json (rank 0; ``search``: the σ* search of ``--forgrad
    auto`` or ``None``; ``record``: how the model was loaded;
    ``settings``: the method's ``--method-args``; ``planned``: its planned passes)."""
    import math

    from freqlens import distributed
    from freqlens.attribution import reduce_channels
    from freqlens.report import attribution_grid
    from freqlens.utils import atomic_save_torch, atomic_write_json

    out = args.out
    saved = {"method": method, "images": images.cpu(), "labels": labels.cpu(), "target": result.target.cpu(),
             "maps": result.maps.cpu()}
    if result.forgrad_maps is not None:
        saved.update(forgrad_maps=result.forgrad_maps.cpu(), sigma=result.sigma, shape=result.shape, mode=result.mode)
    atomic_save_torch(out / "maps.pt", saved)
    spectra = result.log_spectrum()
    figures = []
    for start in range(0, args.n_images, args.grid_size):
        part = slice(start, min(start + args.grid_size, args.n_images))
        rows = [(method, reduce_channels(result.maps[part], "sum"))]
        if result.forgrad_maps is not None:
            rows.append((f"FORGrad σ={result.sigma:.3g}", reduce_channels(result.forgrad_maps[part], "sum")))
        rows.append(("log power", spectra[part], "magnitude"))
        titles = [f"y={int(y)} t={int(t)}" for y, t in zip(labels[part], result.target[part])]
        path = attribution_grid(images[part], rows, out / f"grid_{start // args.grid_size:03d}.png", titles=titles)
        figures.append(path.name)
    summary = {
        "checkpoint": None if args.checkpoint is None else str(args.checkpoint), "model": record,
        "dataset": args.dataset, "split": args.split, "method": method,
        "n_images": args.n_images, "target": args.target, "forgrad": args.forgrad, "shape": args.shape,
        "forgrad_mode": args.forgrad_mode,
        "sigma": result.sigma, "figures": figures, "maps": "maps.pt", "shard_size": args.shard_size,
        "processes": distributed.world_size(), "method_args": settings or {}, "planned_passes": planned,
    }
    if search is not None:
        summary["sigma_search"] = {
            "calibration_images": args.calibration, "sigma_star": search.sigma_star,
            "sigmas": list(search.sigmas),
            "insertion_minus_deletion": search.scores.tolist(), "deletion": search.deletion.tolist(),
            "insertion": search.insertion.tolist(), **search.to_dict(),
        }
    atomic_write_json(out / "explain.json", summary)
    sigma_text = "" if result.sigma is None or math.isnan(result.sigma) else f", FORGrad σ={result.sigma:.4g}"
    print(f"explained {args.n_images} images with {method}{sigma_text}; maps and {len(figures)} grid(s) in {out}")


def add_parser(commands: Any) -> None:
    """Add ``explain`` to the ``freqlens`` sub-commands."""
    from freqlens.attribution.registry import METHOD_NAMES

    explain = commands.add_parser("explain", help="attribution maps (+ FORGrad) of N images: OUT/maps.pt, grids")
    # the names of the registry; canonical_method() also takes their aliases (ig, gxi, ...) in any case
    explain.add_argument("--method", required=True, help=", ".join(METHOD_NAMES))
    add_method_run_flags(explain, several=False, n_images=16, forgrad=None,
                         forgrad_help="low-pass the maps at σ (cycles per image), or search σ* on held-out images",
                         calibration=32, calibration_help="held-out images for --forgrad auto", shard_what="the maps")
    explain.add_argument("--shape", default="box", choices=["box", "disk", "gaussian"], help="FORGrad filter shape")
    explain.add_argument("--target", default="predicted", choices=["predicted", "label"])
    explain.add_argument("--grid-size", type=positive_int, default=16, help="images per PNG grid")
    explain.set_defaults(run=distributed_command(_explain))
