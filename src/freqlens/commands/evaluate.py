"""``freqlens evaluate``: faithfulness table and ranking of attribution methods, original and FORGrad*
(seed 001, Tables 1–2) -> OUT/results.json and OUT/table.md.

The evaluated images are cut into work units of ``--shard-size`` consecutive images, each with its own
random stream seeded from ``(seed, unit)``; under ``torchrun`` the units (and the σ* searches, one per
method) are shared among the processes and the results gathered in image order, so ``results.json`` is
the same for any number of processes (timings aside); rank 0 writes the files.
"""

from __future__ import annotations

import argparse
import sys

from freqlens.commands._common import distributed_command, draw_images, positive_int, progress_enabled
from freqlens.commands._methods import add_method_run_flags, method_settings_from_args, prepare_method_run
from freqlens.errors import FreqlensError


def _explainers(spec: str, model, batch_size, generator, args: argparse.Namespace | None = None,
                ) -> tuple[list[tuple[str, object]], list[str], dict[str, dict]]:
    """Build the requested explainers with their ``--method-args`` settings (of ``args``); ``all`` skips (and
    notes) methods that do not apply to the model. Returns the explainers, the skipped notes and the
    settings per method."""
    from freqlens.attribution.registry import METHOD_NAMES, canonical_method, make_explainer

    use_all = spec.strip().lower() == "all"
    if use_all:
        names = list(METHOD_NAMES)
    else:
        try:
            names = [canonical_method(part) for part in spec.split(",") if part.strip()]
        except ValueError as error:
            raise FreqlensError(str(error)) from None
        if not names:
            raise FreqlensError("--methods is empty")
        if len(set(names)) != len(names):
            raise FreqlensError(f"--methods names a method twice: {spec}")
    settings = method_settings_from_args(args, names) if args is not None else {name: {} for name in names}
    built, skipped = [], []
    for name in names:
        try:
            built.append((name, make_explainer(name, model, batch_size=batch_size, generator=generator,
                                               settings=settings[name])))
        except (FreqlensError, ValueError) as error:
            if not use_all or (settings[name] and _applies(name, model)):  # the settings are at fault
                raise FreqlensError(f"{name}: {error}") from None
            skipped.append(f"{name}: {str(error).splitlines()[0]}")
    return built, skipped, {name: settings[name] for name, _ in built}


def _applies(name: str, model) -> bool:
    """Whether method ``name`` with its default settings can be built around ``model``."""
    from freqlens.attribution.registry import make_explainer

    try:
        make_explainer(name, model)
    except (FreqlensError, ValueError):
        return False
    return True


def _unit_seed(seed: int, *parts: object) -> int:
    """The seed of one random stream of the command (a function of ``seed`` and ``parts`` only)."""
    from freqlens import distributed

    return distributed.stream_seed("freqlens.evaluate", seed, *parts)


def _evaluate_units(names: list[str], model, images, sigma: dict[str, float] | None, args,
                    settings: dict[str, dict] | None = None) -> list[dict]:
    """Per work unit (``--shard-size`` consecutive images) and method: the rows of
    :func:`~freqlens.analysis.ranking.rank_methods` on that unit, with a generator seeded from
    ``(seed, unit)`` (so the same MuFidelity masks for every method of a unit); the units are shared among
    the ranks and gathered in image order, so the result does not depend on the number of processes."""
    import torch
    from tqdm.auto import tqdm

    from freqlens import distributed
    from freqlens.analysis.ranking import rank_methods
    from freqlens.attribution.registry import make_explainer

    starts = [unit.start for unit in distributed.work_units(images.shape[0], args.shard_size)]

    def step() -> list[tuple[int, dict]]:
        mine = distributed.shard(list(enumerate(starts)))
        done = []
        bar = tqdm(mine, desc=f"evaluate (rank {distributed.rank()})" if distributed.active() else "evaluate",
                   unit="unit", disable=not progress_enabled(args))
        for unit, start in bar:
            part = images[start:start + args.shard_size]
            rows = {}
            for name in names:
                generator = torch.Generator(device=images.device).manual_seed(_unit_seed(args.seed, "unit", unit))
                explainer = make_explainer(name, model, batch_size=args.batch_size, generator=generator,
                                           settings=(settings or {}).get(name))
                try:
                    ranking = rank_methods(
                        model, part, None, methods=[(name, explainer)],
                        forgrad=False if sigma is None else sigma[name], steps=args.steps,
                        mufidelity_samples=args.samples, batch_size=args.batch_size, generator=generator,
                        progress=False, mode=args.forgrad_mode,
                    )
                except ValueError as error:
                    raise FreqlensError(f"{name}: {error}") from None
                rows[name] = (ranking.rows[0], ranking.forgrad_rows[0] if ranking.forgrad_rows else None)
            done.append((unit, {"size": int(part.shape[0]), "rows": rows}))
        return done

    return distributed.gather_ordered(distributed.run_everywhere(step))


def _merge_rows(parts: list, sizes: list[int], search=None):
    """One :class:`MethodRow` from the rows of the units: values concatenated in image order, costs
    averaged per image."""
    import torch

    from freqlens.analysis.ranking import MethodRow

    total = sum(sizes)
    first = parts[0]

    def per_image(attribute: str) -> float:
        return sum(getattr(row, attribute) * size for row, size in zip(parts, sizes)) / total

    values = {key: torch.cat([row.values[key] for row in parts]) for key in first.values}
    return MethodRow(first.method, first.forgrad, values, per_image("forward"), per_image("backward"),
                     per_image("seconds"), sigma=first.sigma, search=search, family=first.family)


def _evaluate(args: argparse.Namespace, device) -> int:
    import torch

    from freqlens import distributed
    from freqlens.analysis.ranking import Ranking

    draw = draw_images(args, device)  # with --forgrad auto, σ* per method on held-out images of the same draw
    model, record, images = draw.model, draw.record, draw.images
    generator = torch.Generator(device=device).manual_seed(args.seed)
    explainers, skipped, settings = _explainers(args.methods, model, args.batch_size, generator, args)
    if distributed.is_main():
        for note in skipped:
            print(f"skipped {note}", file=sys.stderr)
    if not explainers:
        raise FreqlensError("no requested method applies to this model")
    names = [name for name, _ in explainers]
    # the passes each method will take (on the evaluated and held-out images), before the long work; σ per method
    planned, chosen = prepare_method_run(args, draw, explainers, seeds={name: _unit_seed(args.seed, "sigma", name)
                                                                        for name in names},
                                         settings=settings, steps=args.steps)
    searches, sigma, source = chosen.searches, chosen.sigmas, chosen.source
    units = _evaluate_units(names, model, images, sigma, args, settings)
    sizes = [unit["size"] for unit in units]
    rows = [_merge_rows([unit["rows"][name][0] for unit in units], sizes) for name in names]
    forgrad_rows = [] if sigma is None else [
        _merge_rows([unit["rows"][name][1] for unit in units], sizes, search=searches.get(name)) for name in names
    ]
    ranking = Ranking(rows=rows, forgrad_rows=forgrad_rows, n_images=args.n_images, sigma_source=source,
                      mode=None if sigma is None else args.forgrad_mode)
    # rank 0 writes; a failure there stops every rank at once (instead of the others timing out)
    distributed.run_everywhere(lambda: _write(args, ranking, names, skipped, record, settings=settings,
                                              planned=planned) if distributed.is_main() else None,
                               catch=(FreqlensError, OSError))
    return 0


def _write(args: argparse.Namespace, ranking, names: list[str], skipped: list[str], record: dict, *,
           settings: dict | None = None, planned: dict | None = None) -> None:
    """OUT/results.json and OUT/table.md (rank 0; ``record``: how the model was loaded; ``settings``: the
    ``--method-args`` of each method; ``planned``: their planned passes)."""
    from freqlens import distributed
    from freqlens.utils import atomic_write_json, atomic_write_text

    results = {
        "checkpoint": None if args.checkpoint is None else str(args.checkpoint), "model": record,
        "dataset": args.dataset, "split": args.split,
        "n_images": args.n_images, "calibration_images": args.calibration if args.forgrad == "auto" else 0,
        "forgrad_setting": args.forgrad, "steps": args.steps, "mufidelity_samples": args.samples,
        "seed": args.seed, "shard_size": args.shard_size, "processes": distributed.world_size(),
        "target": "predicted", "skipped": skipped, "method_args": settings or {}, "planned_passes": planned or {},
        **ranking.to_dict(),
    }
    atomic_write_json(args.out / "results.json", results)
    atomic_write_text(args.out / "table.md", ranking.to_markdown())
    print(f"evaluated {len(names)} method(s) on {args.n_images} images; best: {ranking.order[0]}"
          + (f", best FORGrad*: {ranking.forgrad_order[0]}*" if ranking.forgrad_rows else "")
          + f"; results in {args.out}")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="faithfulness table + ranking of methods (and FORGrad*): OUT/results.json, OUT/table.md"
    )
    parser.add_argument("--methods", default="all", help="all (every method that applies) or a comma list")
    add_method_run_flags(parser, several=True, n_images=32, n_images_help="evaluated images (a random set drawn from "
                         "--seed)", forgrad="auto", forgrad_help="σ* searched per method on held-out images (auto), "
                         "none, or a fixed σ", calibration=16,
                         calibration_help="held-out images (disjoint from the evaluated ones) for --forgrad auto")
    parser.add_argument("--steps", type=positive_int, default=20, help="Deletion/Insertion steps")
    parser.add_argument("--samples", type=positive_int, default=128, help="MuFidelity samples")
    parser.set_defaults(run=distributed_command(_evaluate))
