#!/usr/bin/env python
"""Add a ``freqlens train`` run to the model zoo (``src/freqlens/models/zoo/``, or ``$FREQLENS_ZOO_DIR``).

Reads RUN_DIR/best.pt, writes its weights as a float16 state dict to ``weights/NAME.pt``, and measures the
float16 weights as they will ship: top-1 accuracy on the full test set, on the shipped sample
(``demo-cifar10`` for 3-channel models, ``demo-mnist`` for 1-channel ones) and, for adversarially trained
runs (or with ``--robust yes``), under PGD-20 (L∞, random start; ε = 8/255 for CIFAR-10, 0.3 for MNIST,
α = ε/4) on ``--pgd-images`` test images drawn with ``--seed``. Epochs come from RUN_DIR/history.json, the
wall time from RUN_DIR.time (``/usr/bin/time -f "%e s"``; else the sum of the epoch times), the command
from ``--command`` (else it is rebuilt from the checkpoint's training settings). Then the manifest entry
is written (replacing one of the same name; sorted by name; atomic). Run it from the repository root,
where the recorded relative data paths resolve:

    python scripts/zoo_add.py zoo-runs/lenet-cifar10-standard --name lenet-cifar10-standard \\
        --command "freqlens --threads 1 train --dataset ../shared/data/cifar10/cifar10-jpeg.tar.gz ..."
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import freqlens
from freqlens.attacks import PGD
from freqlens.attacks.evaluation import robust_correct
from freqlens.commands.zoo import option_value, train_argv
from freqlens.data import DATASET_NAMES, load_dataset, pick_indices
from freqlens.errors import FreqlensError
from freqlens.models import build, read_checkpoint, zoo

DEFAULT_DATA = {"cifar10": ("../shared/data/cifar10/cifar10-jpeg.tar.gz", None),
                "mnist": ("mnist", "../shared/data/mnist")}
SAMPLES = {"cifar10": "demo-cifar10", "mnist": "demo-mnist"}
PGD_EPS = {"cifar10": 8 / 255, "mnist": 0.3}
PGD_STEPS = 20


def float16_model(spec: dict[str, Any], state: dict[str, torch.Tensor], device: torch.device) -> nn.Module:
    """The model of ``spec`` with ``state`` rounded to float16 and back: the weights as they ship."""
    model = build(spec["name"], **dict(spec["kwargs"]))
    half = zoo.float16_state(state)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()}, strict=True)
    return model.to(device).eval()


@torch.no_grad()
def accuracy(model: nn.Module, dataset, batch_size: int, device: torch.device) -> float:
    """Top-1 accuracy of ``model`` on every image of ``dataset``."""
    correct = 0
    for start in range(0, len(dataset), batch_size):
        part = slice(start, start + batch_size)
        logits = model(dataset.float_images(part).to(device))
        correct += int((logits.argmax(dim=1).cpu() == dataset.labels[part]).sum())
    return correct / len(dataset)


def reconstruct_command(name: str, spec: dict, config: dict, dataset: str, data_dir: str | None) -> str:
    """A ``freqlens train`` command line equivalent to the checkpoint's recorded training settings."""
    argv = ["freqlens", "--threads", "1", "train", "--dataset", dataset]
    argv += ["--data-dir", data_dir] if data_dir else []
    argv += ["--model", spec["name"], "--epochs", str(config["epochs"]), "--batch-size", str(config["batch_size"]),
             "--lr", repr(config["lr"]), "--optimizer", config["optimizer"],
             "--weight-decay", repr(config["weight_decay"]), "--lr-schedule", config.get("lr_schedule", "constant")]
    if config.get("augment", "none") != "none":
        argv += ["--augment", config["augment"]]
    mode = config.get("mode_config", {"name": "standard"})
    if mode["name"] == "noise-modulation":
        argv += ["--mode", "noise-modulation", "--beta", repr(mode["beta"]), "--noise", mode["noise"]]
    elif mode["name"] == "adversarial":
        kind = {"FastFGSM": "fast-fgsm", "FGSM": "fgsm"}.get(mode.get("attack"), "pgd")
        argv += ["--mode", "adversarial", "--attack", kind, "--eps", repr(mode["eps"])]
        argv += ["--alpha", repr(mode["alpha"])] if "alpha" in mode else []
        argv += ["--steps", str(mode["steps"]), "--attack-norm", str(mode.get("norm", "inf"))] if kind == "pgd" else []
    if config.get("max_batches_per_epoch"):
        argv += ["--max-batches", str(config["max_batches_per_epoch"])]
    argv += ["--seed", str(config["seed"]), "--out", f"zoo-runs/{name}"]
    return shlex.join(argv)


def wall_minutes(run_dir: Path, history: list[dict]) -> tuple[float | None, str]:
    """Minutes of the run: from ``RUN_DIR.time`` (first number of its last line mentioning seconds), else
    the sum of the epoch times of the history; and a note saying which."""
    time_file = run_dir.parent / f"{run_dir.name}.time"
    if time_file.is_file():
        numbers = re.findall(r"(\d+(?:\.\d+)?)\s*s\b", time_file.read_text(errors="replace"))
        if numbers:
            return float(numbers[-1]) / 60, ""
    seconds = [entry.get("seconds") for entry in history]
    if seconds and all(isinstance(value, (int, float)) for value in seconds):
        return sum(seconds) / 60, f"minutes: sum of the epoch times in history.json (no {time_file.name})"
    return None, f"minutes unknown (no {time_file.name}, no epoch times)"


def data_source(args: argparse.Namespace, kind: str) -> tuple[str, str | None]:
    """``(dataset, data_dir)`` of the test set: the flags, else the command's, else the default of ``kind``."""
    if args.dataset is not None:
        return args.dataset, args.data_dir
    if args.command is not None:
        argv = train_argv(args.command)
        dataset = option_value(argv, "--dataset")
        if dataset is not None:
            return dataset, args.data_dir or option_value(argv, "--data-dir")
    dataset, data_dir = DEFAULT_DATA[kind]
    return dataset, args.data_dir or data_dir


def robust_eval(model: nn.Module, test, kind: str, args: argparse.Namespace, device) -> tuple[float, dict]:
    """PGD-20 accuracy on ``--pgd-images`` test images drawn with ``--seed``, and its settings."""
    eps = PGD_EPS[kind] if args.pgd_eps is None else args.pgd_eps
    alpha = eps / 4
    count = min(args.pgd_images, len(test))
    chosen = pick_indices(len(test), count, args.seed)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    attack = PGD(model, eps=eps, alpha=alpha, steps=PGD_STEPS, norm="inf", random_start=True, generator=generator)
    correct = robust_correct(model, test.float_images(chosen).to(device), test.labels[chosen].to(device), attack,
                             batch_size=args.batch_size)
    value = int(correct.sum()) / count
    settings = {"attack": "pgd", "norm": "inf", "eps": eps, "alpha": alpha, "steps": PGD_STEPS,
                "random_start": True, "n_images": count, "image_seed": args.seed, "attack_seed": args.seed,
                "split": "test", "images": "freqlens.data.pick_indices(len(test), n_images, image_seed)"}
    return value, settings


def measure(args: argparse.Namespace, checkpoint: dict, kind: str, device) -> dict[str, Any]:
    """Accuracies of the float16 weights: full test set, shipped sample, PGD-20 when asked."""
    model = float16_model(checkpoint["model"], checkpoint["model_state"], device)
    dataset, data_dir = data_source(args, kind)
    if dataset.strip().lower() not in DATASET_NAMES and not Path(dataset).expanduser().exists():
        raise FreqlensError(f"test data {dataset} not found from {Path.cwd()}; pass --dataset PATH")
    test = load_dataset(dataset, split="test", root=data_dir, progress=False)
    sample = load_dataset(SAMPLES[kind], split="test")
    started = time.perf_counter()
    result = {"test_accuracy": accuracy(model, test, args.batch_size, device), "test_images": len(test),
              "sample": SAMPLES[kind], "sample_accuracy": accuracy(model, sample, args.batch_size, device),
              "sample_images": len(sample), "robust_accuracy": None, "robust_eval": None}
    mode = checkpoint.get("train_config", {}).get("mode", "standard")
    if args.robust == "yes" or (args.robust == "auto" and mode == "adversarial"):
        result["robust_accuracy"], result["robust_eval"] = robust_eval(model, test, kind, args, device)
    print(f"measured in {time.perf_counter() - started:.0f} s: test {result['test_accuracy']:.4f} on {len(test)} "
          f"({dataset}), sample {result['sample_accuracy']:.4f}, robust {result['robust_accuracy']}", flush=True)
    return result


def make_record(args: argparse.Namespace, checkpoint: dict, kind: str, measured: dict, weights: tuple) -> dict:
    """The manifest entry of the run."""
    history = json.loads((args.run_dir / "history.json").read_text())
    config = dict(checkpoint.get("train_config", {}))
    if len(history) < config.get("epochs", 0):
        print(f"zoo_add: warning: {args.run_dir} has {len(history)} of {config['epochs']} epochs (unfinished run?)",
              file=sys.stderr)
    minutes, minutes_note = wall_minutes(args.run_dir, history)
    if args.command is not None:
        train_argv(args.command)  # a freqlens train command line, or a one-line error
        command, command_note = args.command, ""
    else:
        dataset, data_dir = data_source(args, kind)
        command = reconstruct_command(args.name, checkpoint["model"], config, dataset, data_dir)
        command_note = "command rebuilt from the checkpoint's training settings (no --command given)"
    notes = "; ".join(text for text in (args.notes, command_note, minutes_note) if text)
    _, sha256, size = weights
    return {
        "name": args.name, "architecture": checkpoint["model"]["name"], "kwargs": checkpoint["model"]["kwargs"],
        "dataset": kind, "mode": config.get("mode", "standard"),
        "mode_config": config.get("mode_config", {"name": "standard"}), "command": command,
        "seed": int(config.get("seed", 0)), "epochs": len(history), "best_epoch": checkpoint.get("best_epoch"),
        "minutes": None if minutes is None else round(minutes, 2), **measured, "sha256": sha256, "size": size,
        "dtype": "float16", "training": config, "freqlens_version": freqlens.__version__, "notes": notes,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments of the script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="output folder of a freqlens train run (best.pt, history.json)")
    parser.add_argument("--name", required=True, help="zoo name, e.g. lenet-cifar10-nm0.5-gaussian")
    parser.add_argument("--command", default=None, help="the exact freqlens train command line of the run")
    parser.add_argument("--notes", default="", help="free text stored with the entry")
    parser.add_argument("--dataset", default=None, help="test data (default: the command's --dataset)")
    parser.add_argument("--data-dir", default=None, help="folder of a named dataset (mnist, cifar10)")
    parser.add_argument("--robust", choices=["auto", "yes", "no"], default="auto",
                        help="PGD-20 robust accuracy: auto = for adversarially trained runs only")
    parser.add_argument("--pgd-images", type=int, default=1000, help="test images attacked (default 1000)")
    parser.add_argument("--pgd-eps", type=float, default=None, help="default 8/255 (CIFAR-10), 0.3 (MNIST)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacked images and the random starts")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--zoo-dir", type=Path, default=None,
                        help="zoo folder (default $FREQLENS_ZOO_DIR, else the package's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        checkpoint = read_checkpoint(args.run_dir / "best.pt")
        in_channels = checkpoint["model"]["kwargs"].get("in_channels", 3)
        kind = "mnist" if in_channels == 1 else "cifar10"
        measured = measure(args, checkpoint, kind, device)
        weights = zoo.save_weights(args.name, checkpoint["model_state"], args.zoo_dir)
        record = make_record(args, checkpoint, kind, measured, weights)
        zoo.write_entry(record, args.zoo_dir)
        shipped = zoo.load(args.name, map_location=device, root=args.zoo_dir)
        check = accuracy(shipped, load_dataset(record["sample"], split="test"), args.batch_size, device)
        if check != record["sample_accuracy"]:
            raise FreqlensError(f"the written weights score {check} on the sample, not {record['sample_accuracy']}")
    except (FreqlensError, OSError) as error:
        print(f"zoo_add: error: {error}", file=sys.stderr)
        return 2
    print(f"added {args.name} to {zoo.manifest_path(args.zoo_dir)}: {weights[2]:,} bytes, sha256 {weights[1][:16]}…")
    return 0


if __name__ == "__main__":
    sys.exit(main())
