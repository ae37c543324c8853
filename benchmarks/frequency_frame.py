"""One frequency frame (issue 17, items 3 and 4): the zoo's resnet_small trained four ways — standard,
noise modulation (β = 0.5, Gaussian), fast-FGSM adversarial training and the anti-aliased twin
(BlurPool, filter 3) — side by side on the same CIFAR-10 test images, with every frequency measure of
seeds 000, 001 and 003 (:func:`freqlens.analysis.frequency_frame`). Not a test: prints the table, writes
``results/frequency_frame.json`` and ``results/frequency_frame_depth.png`` (gradient HF along depth).

The anti-aliased twin and its matched control (``resnet_small-cifar10-standard-5ep``) share every
training setting but the BlurPool layers (same seed, 5 epochs); the 15-epoch standard model is the
zoo's best. Models missing from the zoo are skipped with a message.
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import RESULTS, SHARED_DATA, write_result

from freqlens.analysis import default_sigmas
from freqlens.analysis.frame import frame_hf_depth, frequency_frame
from freqlens.data import load_dataset, pick_indices
from freqlens.models import load, zoo
from freqlens.report.figures import line_plot

MODELS = ("resnet_small-cifar10-standard", "resnet_small-cifar10-standard-5ep",
          "resnet_small-cifar10-antialias3-5ep", "resnet_small-cifar10-nm0.5-gaussian",
          "resnet_small-cifar10-fgsm-at")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default=str(SHARED_DATA / "cifar10" / "cifar10-jpeg.tar.gz"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--n-images", type=int, default=96)
    parser.add_argument("--n-calibration", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="Deletion / Insertion steps")
    parser.add_argument("--n-sigmas", type=int, default=8, help="σ grid of the search (default_sigmas)")
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [name for name in args.models.split(",") if name]
    missing = [name for name in names if name not in zoo.names()]
    for name in missing:
        print(f"skipping {name}: not in the zoo")
    models = {name: load(f"zoo:{name}").eval() for name in names if name not in missing}
    test = load_dataset(args.dataset, "test")
    evaluated = pick_indices(len(test), args.n_images, seed=0)
    held_out = pick_indices(len(test), args.n_calibration, seed=0, skip=args.n_images)
    images, labels = test.float_images(evaluated), test.labels[evaluated]
    calibration = (test.float_images(held_out), test.labels[held_out])
    start = time.perf_counter()
    sigmas = default_sigmas(*images.shape[-2:], "box", n=args.n_sigmas)
    frame = frequency_frame(models, images, labels, calibration, steps=args.steps, sigmas=sigmas,
                            pgd_steps=args.pgd_steps,
                            batch_size=args.batch_size, progress=True)
    seconds = time.perf_counter() - start
    print(frame.markdown())
    depth = frame_hf_depth(frame)
    figure = line_plot({name: ([k / max(len(v) - 1, 1) for k in range(len(v))], [value for _, value in v])
                        for name, v in depth.items()}, RESULTS / "frequency_frame_depth.png",
                       xlabel="relative depth (layer index / last)", ylabel="HF power share of ∂f_y/∂layer",
                       title="Gradient HF along depth (radius > min(H, W)/4)")
    print(f"wrote {figure}")
    write_result("frequency_frame", {"settings": vars(args), "seconds": seconds, "markdown": frame.markdown(),
                                     "models": {name: {"test_accuracy": zoo.entry(name).test_accuracy,
                                                       "robust_accuracy": zoo.entry(name).robust_accuracy,
                                                       "epochs": zoo.entry(name).epochs} for name in models},
                                     **frame.to_dict()})


if __name__ == "__main__":
    main()
