"""Faithfulness-metric benchmark (not a test): overhead of the streaming metrics and of search_sigma.

    python benchmarks/metrics.py                # resnet_small, 16 CIFAR-size images
    python benchmarks/metrics.py --images 8 --repeat 2

Ratios printed (goals in brackets):
* ``metrics_ratio`` = time of Deletion(20) + Insertion(20) + MuFidelity(128) ÷ the time of the same
  number of images through the model at the best chunk size (best per-image forward time over chunk
  sizes; also reported against ``images × best per-image time`` measured up front)   [≤ 1.2]
* ``search_ratio`` = time of ``search_sigma`` over 16 σ ÷ (1 attribution + 16 × (Deletion + Insertion))
  [≤ 1.05]
* ``quantus_ratio`` = time of Quantus ``FaithfulnessCorrelation`` (``nr_runs`` = MuFidelity samples,
  ``subset_size`` ≈ 20 % of the pixels, the same perturbation budget) ÷ time of freqlens ``mufidelity``
  (grid 9, subset 0.2) on the same model, images and maps; skipped with a message if quantus is absent.

Writes ``benchmarks/results/metrics.json``. The CPU may be shared: timings are best-of-``repeat``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _common import best_time, write_result

from freqlens.analysis import search_sigma
from freqlens.attribution import Saliency
from freqlens.attribution.base import count_passes
from freqlens.metrics import deletion, insertion, mufidelity
from freqlens.models import build

CHUNKS = (8, 16, 32, 64, 128, 256)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--sigmas", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = build("resnet_small", in_channels=3, num_classes=10, image_size=(32, 32)).eval()
    inputs = torch.rand(args.images, 3, 32, 32)
    with torch.no_grad():
        target = model(inputs).argmax(1)

    # Best per-image forward time over chunk sizes (the denominator of the overhead ratio).
    per_image = {}
    for chunk in CHUNKS:
        batch = torch.rand(chunk, 3, 32, 32)
        with torch.no_grad():
            per_image[chunk] = best_time(lambda b=batch: model(b), repeat=args.repeat) / chunk
    best_chunk = min(per_image, key=per_image.get)
    forward_per_image = per_image[best_chunk]
    print(f"forward per image: {forward_per_image * 1e3:.3f} ms (best chunk {best_chunk}); "
          + ", ".join(f"{c}: {t * 1e3:.3f}" for c, t in per_image.items()))

    saliency = Saliency(model)
    maps = saliency(inputs, target)
    common = {"batch_size": best_chunk}

    def metrics() -> None:
        deletion(model, inputs, target, maps, steps=args.steps, **common)
        insertion(model, inputs, target, maps, steps=args.steps, **common)
        mufidelity(model, inputs, target, maps, samples=args.samples,
                   generator=torch.Generator().manual_seed(0), **common)

    n_forward = args.images * (2 * (args.steps + 1) + args.samples + 1)
    reference_batch = torch.rand(best_chunk, 3, 32, 32)

    def forwards(n_images: int) -> None:
        """The same number of images through the model at the best chunk size: the ideal cost."""
        with torch.no_grad():
            for _ in range(-(-n_images // best_chunk)):
                model(reference_batch)

    # Interleaved best-of-repeat: a shared CPU slows both sides of each ratio alike.
    metrics_time = forward_time = float("inf")
    for _ in range(args.repeat):
        metrics_time = min(metrics_time, best_time(metrics, repeat=1, warmup=0))
        forward_time = min(forward_time, best_time(lambda: forwards(n_forward), repeat=1, warmup=0))
    metrics_ratio = metrics_time / forward_time
    metrics_ratio_per_image = metrics_time / (n_forward * forward_per_image)
    print(f"D({args.steps}) + I({args.steps}) + MuFidelity({args.samples}): {metrics_time:.3f} s for "
          f"{n_forward} images; plain forwards {forward_time:.3f} s -> ratio {metrics_ratio:.3f} (goal <= 1.2; "
          f"vs the per-image best {n_forward * forward_per_image:.3f} s: {metrics_ratio_per_image:.3f})")

    sigmas = [float(s) for s in torch.linspace(1, 16, args.sigmas)]

    def one_metric_evaluation() -> None:
        deletion(model, inputs, target, maps, steps=args.steps, **common)
        insertion(model, inputs, target, maps, steps=args.steps, **common)

    def reference_search() -> None:
        saliency(inputs, target)
        for _ in sigmas:
            one_metric_evaluation()

    def run_search() -> None:
        search_sigma(saliency, model, inputs, target, sigmas=sigmas, steps=args.steps, **common)

    search_time = reference_time = float("inf")
    for _ in range(args.repeat):
        search_time = min(search_time, best_time(run_search, repeat=1, warmup=0))
        reference_time = min(reference_time, best_time(reference_search, repeat=1, warmup=0))
    search_ratio = search_time / reference_time
    print(f"search_sigma over {len(sigmas)} σ: {search_time:.3f} s vs 1 attribution + {len(sigmas)} × (D + I) "
          f"{reference_time:.3f} s -> ratio {search_ratio:.3f} (goal <= 1.05)")

    quantus_result = compare_with_quantus(model, inputs, target, maps, args)

    write_result("metrics", {
        "model": "resnet_small",
        "images": args.images,
        "steps": args.steps,
        "samples": args.samples,
        "sigmas": len(sigmas),
        "repeat": args.repeat,
        "forward_per_image_s": {str(c): t for c, t in per_image.items()},
        "best_chunk": best_chunk,
        "metrics_forward_images": n_forward,
        "metrics_s": metrics_time,
        "plain_forwards_s": forward_time,
        "metrics_ratio": metrics_ratio,
        "metrics_ratio_vs_best_per_image": metrics_ratio_per_image,
        "metrics_goal": 1.2,
        "search_sigma_s": search_time,
        "search_reference_s": reference_time,
        "search_ratio": search_ratio,
        "search_goal": 1.05,
        **quantus_result,
        "timestamp": time.time(),
    })
    return 0


def compare_with_quantus(model, inputs, target, maps, args) -> dict:
    """Side by side: Quantus FaithfulnessCorrelation vs freqlens mufidelity at the same number of perturbations."""
    try:
        import quantus
    except ImportError:
        print("quantus is not installed: FaithfulnessCorrelation comparison skipped (pip install freqlens[peers])")
        return {"quantus": None}
    from freqlens.interop import to_quantus

    height, width = inputs.shape[-2:]
    subset_size = round(0.2 * height * width)
    x_batch, y_batch, a_batch = inputs.numpy(), target.numpy(), to_quantus(maps)
    metric = quantus.FaithfulnessCorrelation(nr_runs=args.samples, subset_size=subset_size,
                                             disable_warnings=True, return_aggregate=False)

    # Quantus forwards the whole image batch once per run: give freqlens the same pass size (B images).
    batch = inputs.shape[0]

    def run_quantus() -> None:
        metric(model=model, x_batch=x_batch, y_batch=y_batch, a_batch=a_batch, device="cpu", batch_size=batch)

    def run_freqlens() -> None:
        mufidelity(model, inputs, target, maps, samples=args.samples, subset=0.2, batch_size=batch,
                   generator=torch.Generator().manual_seed(0))

    forwarded = {}
    for name, run in (("quantus", run_quantus), ("freqlens", run_freqlens)):
        with count_passes(model) as count:
            run()
        forwarded[name] = count.forward

    quantus_time = freqlens_time = float("inf")
    for _ in range(min(args.repeat, 2)):  # Quantus is the slow side; two rounds keep the benchmark short
        quantus_time = min(quantus_time, best_time(run_quantus, repeat=1, warmup=0))
        freqlens_time = min(freqlens_time, best_time(run_freqlens, repeat=1, warmup=0))
    ratio = quantus_time / freqlens_time
    print(f"Quantus FaithfulnessCorrelation ({args.samples} runs, subset {subset_size} px, {forwarded['quantus']} "
          f"images forwarded): {quantus_time:.3f} s; freqlens MuFidelity ({args.samples} samples, subset 0.2, "
          f"{forwarded['freqlens']} images forwarded): {freqlens_time:.3f} s -> Quantus / freqlens = {ratio:.2f}")
    return {"quantus": {"version": quantus.__version__, "metric": "FaithfulnessCorrelation",
                        "nr_runs": args.samples, "subset_size": subset_size, "quantus_s": quantus_time,
                        "mufidelity_s": freqlens_time, "quantus_over_freqlens": ratio,
                        "forwarded_images": forwarded, "pass_size": batch}}


if __name__ == "__main__":
    sys.exit(main())
