"""CW with Carlini–Wagner's binary search over c vs CW at a fixed c = 1, at equal forward-pass budgets
(issue 17): success rate and median L2 of the successful examples on zoo models (MNIST and CIFAR-10
LeNets), 256 correctly classified test images each. Not a test: prints a table, writes
``results/cw_search.json``.

Budgets: the search runs ``rounds × steps`` Adam steps; the fixed-c attack gets the same number of steps
in one round (``rounds · steps``), and the old default (fixed c, ``steps``) is shown for reference.
Forward and backward passes are counted, not assumed. ``abort_early`` is off so budgets are exact.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import write_result

from freqlens.attacks import CW
from freqlens.attribution.base import count_passes
from freqlens.data import load_dataset, pick_indices
from freqlens.models import load


def _correct(model, dataset: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    test = load_dataset(dataset, "test")
    chosen = pick_indices(len(test), min(2 * n, len(test)), seed=0)
    images, labels = test.float_images(chosen), test.labels[chosen]
    with torch.no_grad():
        keep = (model(images).argmax(1) == labels).nonzero().squeeze(1)[:n]
    return images[keep], labels[keep]


def _run(model, images, labels, attack: CW) -> dict:
    start = time.perf_counter()
    with count_passes(model) as count:
        adversarial = attack(images, labels)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        success = model(adversarial).argmax(1) != labels
    l2 = (adversarial - images).flatten(1).norm(dim=1)
    return {"attack": repr(attack), "success_rate": float(success.float().mean()),
            "median_l2": float(l2[success].median()) if success.any() else None,
            "forward_per_image": count.forward / len(images), "backward_per_image": count.backward / len(images),
            "seconds": seconds, "success": success, "l2": l2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-images", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="Adam steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="binary-search rounds")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for name, dataset, lr in (("zoo:lenet-mnist-standard", "demo-mnist", 0.05),
                              ("zoo:lenet-cifar10-standard", "demo-cifar10", 0.01)):
        model = load(name).eval()
        images, labels = _correct(model, dataset, args.n_images)
        settings = {"c": 1.0, "lr": lr, "abort_early": False}
        runs = {
            f"fixed c, {args.steps} steps (old default)": CW(model, steps=args.steps, binary_search_steps=1,
                                                              **settings),
            f"fixed c, {args.rounds * args.steps} steps": CW(model, steps=args.rounds * args.steps,
                                                             binary_search_steps=1, **settings),
            f"search, {args.rounds} × {args.steps} steps": CW(model, steps=args.steps,
                                                              binary_search_steps=args.rounds, **settings),
        }
        results = {label: _run(model, images, labels, attack) for label, attack in runs.items()}
        fixed, search = (results[label] for label in list(runs)[1:])
        both = fixed["success"] & search["success"]
        for label, result in results.items():
            rows.append({"model": name, "images": len(images), "run": label,
                         **{k: v for k, v in result.items() if k not in ("success", "l2")}})
            print(f"{name:28s} {label:34s} success {result['success_rate']:.3f}  median L2 "
                  f"{result['median_l2'] if result['median_l2'] is None else round(result['median_l2'], 4)}  "
                  f"fwd/img {result['forward_per_image']:.0f}  {result['seconds']:.1f} s")
        rows.append({"model": name, "run": "on images both equal-budget runs made adversarial",
                     "images": int(both.sum()), "median_l2_fixed": float(fixed["l2"][both].median()),
                     "median_l2_search": float(search["l2"][both].median()),
                     "search_never_larger": bool((search["l2"][both] <= fixed["l2"][both] + 1e-5).all())})
        print(f"{'':28s} on the {int(both.sum())} images both succeed: median L2 fixed "
              f"{rows[-1]['median_l2_fixed']:.4f}, search {rows[-1]['median_l2_search']:.4f}")
    write_result("cw_search", {"settings": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
