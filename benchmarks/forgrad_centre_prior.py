"""A control for the forgrad study's cpu-scale verdict: how does a map that knows nothing about the image
or the model score? On the study's own evaluated images (``results/studies/forgrad-cpu/results.json``,
3 seeds × 64 CIFAR-10 test images, predicted classes, Deletion / Insertion with 10 steps, zero baseline,
probability, as the study), mean Insertion − Deletion of: a centred Gaussian blob (std 8 px, the same map
for every image), uniform noise, and FORGrad(Saliency) in the magnitude pipeline at σ = 1 (the σ* the study
chose for every gradient method of every model). Not a test: prints, writes ``results/forgrad_centre_prior.json``.

If the blob scores as well as FORGrad* at σ = 1, the "FORGrad improves I − D" verdict at this σ measures
CIFAR-10's centre bias (objects sit in the middle) as much as the explanations.
"""

from __future__ import annotations

import json

import torch
from _common import RESULTS, SHARED_DATA, write_result

from freqlens.attribution import Saliency, forgrad_filter
from freqlens.data import load_dataset
from freqlens.metrics import deletion, insertion
from freqlens.models import load


def _maps(model, images, target, seed: int) -> dict[str, torch.Tensor]:
    centre = torch.arange(32, dtype=torch.float32) - 15.5
    blob = torch.exp(-(centre[:, None] ** 2 + centre[None, :] ** 2) / (2 * 8.0**2)).expand(len(images), 1, 32, 32)
    noise = torch.rand(len(images), 1, 32, 32, generator=torch.Generator().manual_seed(seed))
    saliency = forgrad_filter(Saliency(model)(images, target), 1.0, "box", "magnitude")
    return {"centred blob (same map for every image)": blob, "uniform noise": noise,
            "FORGrad(Saliency) magnitude, σ = 1": saliency}


def main() -> None:
    torch.set_num_threads(1)
    study = json.loads((RESULTS / "studies" / "forgrad-cpu" / "results.json").read_text())
    test = load_dataset(str(SHARED_DATA / "cifar10" / "cifar10-jpeg.tar.gz"), "test")
    rows = []
    for name in ("resnet_small", "vit_tiny", "convnext_tiny"):
        model = load(f"zoo:{name}-cifar10-standard").eval()
        per_seed = []
        for seed, draw in study["test indices"].items():
            images = test.float_images(draw["evaluated"])
            with torch.no_grad():
                target = model(images).argmax(1)
            scores = {}
            for label, maps in _maps(model, images, target, int(seed)).items():
                d = deletion(model, images, target, maps, steps=10).double().mean().item()
                i = insertion(model, images, target, maps, steps=10).double().mean().item()
                scores[label] = i - d
            per_seed.append(scores)
        mean = {label: sum(s[label] for s in per_seed) / len(per_seed) for label in per_seed[0]}
        rows.append({"model": name, "insertion_minus_deletion": mean, "seeds": per_seed})
        print(name, {label: round(value, 4) for label, value in mean.items()})
    write_result("forgrad_centre_prior", {"rows": rows})


if __name__ == "__main__":
    main()
