"""Per-image FORGrad σ from the map's own spectrum (``sigma="auto"``, no model call) against the global σ*
of ``search_sigma`` (chosen on held-out calibration images) and the per-image oracle (argmax of I − D
per evaluated image over the σ grid: an upper bound, not a method), issue 17 item 1. Not a test: prints
a table and writes ``results/forgrad_auto_sigma.json``.

Per method, on the evaluated images: mean Insertion − Deletion and MuFidelity of the raw (unfiltered,
same pipeline), global-σ*, auto and oracle maps; paired bootstrap 95 % intervals of auto − raw, auto −
global and oracle − global; and the forward passes per evaluated image each choice of σ costs beyond
the explainer (global: the calibration search, spread over the evaluated images; auto: 0; oracle: the
whole grid on every evaluated image).
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import write_result

from freqlens.analysis import default_sigmas, paired_bootstrap_interval, search_sigma
from freqlens.attribution import auto_sigma, count_passes, forgrad_filter
from freqlens.attribution.registry import make_explainer
from freqlens.data import load_dataset, pick_indices
from freqlens.metrics import deletion, insertion, mufidelity
from freqlens.models import load
from freqlens.spectral import lowpass_each


class _Cached:
    """Already computed maps as an explainer (the oracle's search reuses the evaluated maps)."""

    def __init__(self, maps):
        self.maps = maps

    def attribute(self, inputs, target=None):
        return self.maps


def _metrics(model, images, target, maps, steps, samples) -> dict[str, torch.Tensor]:
    masks = torch.Generator().manual_seed(0)
    d = deletion(model, images, target, maps, steps=steps).double()
    i = insertion(model, images, target, maps, steps=steps).double()
    f = mufidelity(model, images, target, maps, samples=samples, generator=masks).double()
    return {"i_minus_d": i - d, "mufidelity": f}


def _method(model, method, images, target, calibration, args) -> dict:
    explainer = make_explainer(method, model, generator=torch.Generator().manual_seed(0))
    grid = default_sigmas(*images.shape[-2:], "box", n=args.n_sigmas)
    with count_passes(model) as global_cost:
        found = search_sigma(explainer, model, calibration, None, sigmas=grid, steps=args.steps, mode=args.mode)
    maps = explainer(images, target).detach()
    with count_passes(model) as oracle_cost:
        oracle = search_sigma(_Cached(maps), model, images, target, sigmas=grid, steps=args.steps, mode=args.mode)
    oracle_sigma = torch.tensor([grid[k] for k in oracle.per_image.argmax(dim=0).tolist()], dtype=torch.float64)
    auto = auto_sigma(maps, "box", args.mode)
    variants = {
        "raw": forgrad_filter(maps, float("inf"), "box", args.mode),
        "global": forgrad_filter(maps, found.sigma_star, "box", args.mode),
        "auto": forgrad_filter(maps, "auto", "box", args.mode),
        "oracle": lowpass_each(forgrad_filter(maps, float("inf"), "box", args.mode), oracle_sigma, "box").abs()
        if args.mode == "magnitude" else lowpass_each(maps, oracle_sigma, "box"),
    }
    values = {name: _metrics(model, images, target, v, args.steps, args.samples) for name, v in variants.items()}
    n = len(images)
    row = {"method": method, "sigma_star": found.sigma_star, "auto_sigma_median": float(auto.median()),
           "auto_sigma_quartiles": [float(auto.quantile(0.25)), float(auto.quantile(0.75))],
           "oracle_sigma_median": float(oracle_sigma.median()),
           "extra_forward_per_image": {"global": global_cost.forward / n, "auto": 0.0, "oracle": oracle_cost.forward / n}}
    for metric in ("i_minus_d", "mufidelity"):
        row[metric] = {name: float(v[metric].mean()) for name, v in values.items()}
        for a, b in (("auto", "raw"), ("auto", "global"), ("global", "raw"), ("oracle", "global")):
            interval = paired_bootstrap_interval(values[a][metric], values[b][metric], 1000, 0.95,
                                                 torch.Generator().manual_seed(0))
            row[metric][f"{a} − {b}"] = interval.to_dict()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="zoo:resnet_small-cifar10-standard")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--methods", default="saliency,gradient_input,smoothgrad")
    parser.add_argument("--mode", default="magnitude", choices=["magnitude", "signed"])
    parser.add_argument("--n-images", type=int, default=64)
    parser.add_argument("--n-calibration", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--samples", type=int, default=32, help="MuFidelity samples")
    parser.add_argument("--n-sigmas", type=int, default=8)
    args = parser.parse_args()
    model = load(args.model).eval()
    test = load_dataset(args.dataset, "test")
    evaluated = pick_indices(len(test), args.n_images, seed=0)
    held_out = pick_indices(len(test), args.n_calibration, seed=0, skip=args.n_images)
    images, calibration = test.float_images(evaluated), test.float_images(held_out)
    with torch.no_grad():
        target = model(images).argmax(1)
    rows = []
    for method in args.methods.split(","):
        start = time.perf_counter()
        row = _method(model, method, images, target, calibration, args)
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        gain = row["i_minus_d"]
        print(f"{method:16s} σ*={row['sigma_star']:g} auto median {row['auto_sigma_median']:g} oracle median "
              f"{row['oracle_sigma_median']:g} | I−D raw {gain['raw']:.3f} global {gain['global']:.3f} auto "
              f"{gain['auto']:.3f} oracle {gain['oracle']:.3f} | auto−global "
              f"[{gain['auto − global']['low']:.3f}, {gain['auto − global']['high']:.3f}] | extra fwd/img "
              f"{row['extra_forward_per_image']}")
    write_result("forgrad_auto_sigma", {"settings": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
