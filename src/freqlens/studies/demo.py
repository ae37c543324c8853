"""The main job on the embedded sample: train a LeNet on the shipped MNIST digits, explain 16 test
images with input-gradients (Saliency) and write ``report.html`` with the maps and the training curve.

Nothing is downloaded: the data is ``load_dataset("demo")``, shipped inside the package.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from freqlens.attribution import Saliency, reduce_channels
from freqlens.data import load_dataset
from freqlens.models import load
from freqlens.report import attribution_grid, training_curves, write_report
from freqlens.studies.common import model_for_dataset
from freqlens.training import evaluate, train
from freqlens.utils import atomic_save_torch, atomic_write_json


@dataclasses.dataclass
class DemoConfig:
    """Every number of the demo in one place."""

    model: str = "lenet"
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    n_explain: int = 16
    seed: int = 0


def run_demo(out_dir: str | Path, config: DemoConfig | None = None, *, progress: bool = True) -> Path:
    """Run the demo into ``out_dir`` and return the path of ``report.html``."""
    config = config or DemoConfig()
    out_dir = Path(out_dir)
    study_dir = out_dir / "demo"
    study_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    train_set = load_dataset("demo", split="train")
    test_set = load_dataset("demo", split="test")
    model = model_for_dataset(config.model, train_set, seed=config.seed)
    history = train(
        model,
        train_set,
        test_set,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        out_dir=study_dir / "model",
        seed=config.seed,
        progress=progress,
    )
    model = load(study_dir / "model" / "best.pt")
    test_metrics = evaluate(model, test_set)

    images = test_set.float_images(range(config.n_explain))
    labels = test_set.labels[: config.n_explain]
    with torch.no_grad():
        predictions = model(images).argmax(dim=1)
    maps = Saliency(model)(images, labels)
    atomic_save_torch(
        study_dir / "saliency.pt", {"images": images, "labels": labels, "predictions": predictions, "maps": maps}
    )
    titles = [f"y={int(y)} p={int(p)}" for y, p in zip(labels, predictions)]
    attribution_grid(
        images,
        [("saliency", reduce_channels(maps, "sum"))],
        study_dir / "saliency_grid.png",
        titles=titles,
        title="Input-gradients (Saliency) of the target class, LeNet on the demo sample",
    )
    training_curves(history, study_dir / "training_curve.png", title=f"{config.model} on the demo sample")

    results = {
        "study": "demo",
        "title": "Demo: LeNet on the embedded MNIST sample",
        "description": (
            f"A {config.model} trained for {config.epochs} epochs on the {len(train_set)} training digits "
            f"shipped with freqlens, evaluated on {len(test_set)} test digits; input-gradient maps "
            f"(Saliency, red = positive, blue = negative) of {config.n_explain} test images."
        ),
        "command": "freqlens demo --out " + str(out_dir),
        "config": dataclasses.asdict(config),
        "summary": {
            "test accuracy (best checkpoint)": round(test_metrics["accuracy"], 4),
            "test loss": round(test_metrics["loss"], 4),
            "epochs": config.epochs,
            "training seconds": round(sum(entry["seconds"] for entry in history), 2),
            "total seconds": round(time.perf_counter() - started, 2),
        },
        "figures": [
            {"file": "saliency_grid.png", "caption": "Saliency maps of 16 test digits (label y, prediction p)."},
            {"file": "training_curve.png", "caption": "Training and test loss / accuracy per epoch."},
        ],
        "history": history,
    }
    atomic_write_json(study_dir / "results.json", json.loads(json.dumps(results, default=float)))
    return write_report(out_dir, title="freqlens demo report")
