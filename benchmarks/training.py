"""Training benchmark: epoch time (and accuracy) of ``lenet`` on MNIST and ``resnet_small`` on CIFAR-10.

    python benchmarks/training.py                 # 1 epoch each (epoch time)
    python benchmarks/training.py --epochs 10     # the issue's accuracy runs (CIFAR: ~10 × epoch time)
    python benchmarks/training.py --only lenet

Reads ``../shared/data`` (or ``$FREQLENS_SHARED_DATA``); writes ``benchmarks/results/training.json``.
"""

from __future__ import annotations

import argparse
import sys

from _common import SHARED_DATA, write_result

from freqlens.data import load_dataset, normalization_stats
from freqlens.models import model_for_dataset, num_parameters
from freqlens.training import train

CASES = {
    "lenet": ("mnist", SHARED_DATA / "mnist", "lenet"),
    "resnet_small": (str(SHARED_DATA / "cifar10" / "cifar10-jpeg.tar.gz"), None, "resnet_small"),
}


def run_case(key: str, epochs: int, out_root: str) -> dict:
    dataset, root, model_name = CASES[key]
    train_set = load_dataset(dataset, "train", root=root)
    test_set = load_dataset(dataset, "test", root=root)
    model = model_for_dataset(model_name, train_set, *normalization_stats(train_set.images), seed=0)
    history = train(model, train_set, test_set, epochs=epochs, out_dir=f"{out_root}/{key}", seed=0, progress=True)
    seconds = [entry["seconds"] for entry in history]
    return {
        "dataset": dataset if root is None else f"{dataset} ({root})",
        "model": model_name,
        "parameters": num_parameters(model),
        "train_images": len(train_set),
        "epochs": epochs,
        "epoch_seconds": seconds,
        "mean_epoch_seconds": sum(seconds) / len(seconds),
        "final_test_accuracy": history[-1]["val_accuracy"],
        "best_test_accuracy": max(entry["val_accuracy"] for entry in history),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--only", choices=sorted(CASES), action="append")
    parser.add_argument("--out", default="/tmp/freqlens-bench-training")
    args = parser.parse_args(argv)
    if not SHARED_DATA.is_dir():
        print(f"shared data not found at {SHARED_DATA}; set FREQLENS_SHARED_DATA", file=sys.stderr)
        return 2
    results = {key: run_case(key, args.epochs, args.out) for key in (args.only or sorted(CASES))}
    for key, result in results.items():
        print(f"{key}: {result['mean_epoch_seconds']:.1f} s/epoch, best test accuracy {result['best_test_accuracy']:.4f}")
    write_result("training" if not args.only else "training-" + "-".join(args.only), {"epochs": args.epochs, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
