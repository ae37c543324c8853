"""Big-image benchmark (a script, not a test): every attribution method with its default settings at 224 px.

    python benchmarks/big_images.py                 # 2 images 3×224×224, ResNet-50 shape at base width 16
    python benchmarks/big_images.py --width 64      # the real ResNet-50 width (slow on a CPU)
    python benchmarks/big_images.py --methods occlusion,rise --images 1

Builds a ResNet-50-shaped network (torchvision's layout: 7×7 stride-2 stem, max pool, bottleneck stages
[3, 4, 6, 3], global average pool, 1,000 classes) at a reduced base width (16 instead of 64: about 1/16
of the FLOPs), random weights, eval mode. For every registered method (``freqlens.attribution.registry``)
built with its defaults — which follow the input size where the cost depends on it (Occlusion's patch and
stride, RISE's mask count, HSIC's designs) — it measures on ``--images`` images (target given, the
predicted class):

* ``forward`` / ``backward``: images through the model's forward / backward passes per image
  (``count_passes``), and the ``planned`` numbers the explainer announces (``planned_passes``; equal);
* ``seconds``: wall-clock seconds per image.

Before the size-dependent defaults, the same run cost 12,322 forwards per image for Occlusion (4-px patches,
stride 2), 8,001 for RISE (8,000 masks) and 2,001 for HSIC (2,000 designs); now 226, 500 and 500.

Goal: every default method ≤ 500 passes (forward + backward) per image at 224 px, except where the
method's definition needs more (Sobol: ``N·(grid² + 2)`` model calls for its Jansen estimator, 2,112 at
every size). Writes ``benchmarks/results/big_images.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _common import write_result
from torch import Tensor, nn

GOAL = 500
#: Methods whose definition needs more than GOAL passes per image with their published settings.
EXEMPT = {"sobol": "Jansen estimator: N·(grid² + 2) = 32·66 = 2,112 forwards (Fel et al. / Xplique defaults)"}


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (1×1, 3×3, 1×1 conv-BN, residual addition, ReLU)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50Shape(nn.Module):
    """ResNet-50's layout (``layer1``..``layer4`` of [3, 4, 6, 3] bottlenecks) at base width ``width``."""

    def __init__(self, width: int = 16, classes: int = 1000, blocks: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes, layers = width, []
        for index, count in enumerate(blocks):
            planes = width * 2**index
            stage = [Bottleneck(inplanes, planes, 1 if index == 0 else 2)]
            stage += [Bottleneck(planes * 4, planes) for _ in range(count - 1)]
            layers.append(nn.Sequential(*stage))
            inplanes = planes * 4
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def measure(name: str, model: nn.Module, x: Tensor, target: Tensor) -> dict:
    """Passes (counted and planned) and seconds per image of method ``name`` with its defaults."""
    from freqlens.attribution import count_passes
    from freqlens.attribution.base import planned_passes
    from freqlens.attribution.registry import make_explainer

    explainer = make_explainer(name, model, generator=torch.Generator().manual_seed(0))
    height, width = x.shape[-2:]
    plan = planned_passes(explainer, height, width)
    start = time.perf_counter()
    with count_passes(model) as count:
        maps = explainer(x, target)
    seconds = time.perf_counter() - start
    batch = x.shape[0]
    if not bool(torch.isfinite(maps).all()):
        raise RuntimeError(f"{name}: non-finite maps")
    forward, backward = count.forward / batch, count.backward / batch
    row = {
        "method": name, "explainer": repr(explainer), "forward": forward, "backward": backward,
        "passes": forward + backward, "planned_forward": None if plan is None else plan.forward,
        "planned_backward": None if plan is None else plan.backward, "seconds": seconds / batch,
        "map_shape": list(maps.shape[1:]), "within_goal": forward + backward <= GOAL,
    }
    if name in ("gradcam", "gradcam_pp"):
        row["layer"] = next(n for n, m in model.named_modules() if m is explainer.layer)
    if name in EXEMPT:
        row["exempt"] = EXEMPT[name]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--width", type=int, default=16, help="base width (ResNet-50: 64)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default="all", help="all or a comma list of registered methods")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from freqlens.attribution.registry import METHOD_NAMES, canonical_method

    names = list(METHOD_NAMES) if args.methods == "all" else [canonical_method(m) for m in args.methods.split(",")]
    torch.manual_seed(0)
    model = ResNet50Shape(width=args.width).eval()
    x = torch.rand(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        start = time.perf_counter()
        target = model(x).argmax(dim=1)
        forward_seconds = (time.perf_counter() - start) / args.images
    parameters = sum(p.numel() for p in model.parameters())
    print(f"ResNet-50 shape, base width {args.width}: {parameters / 1e6:.2f} M parameters; "
          f"{forward_seconds * 1e3:.1f} ms per image forward at {args.size} px ({args.threads} thread(s))")
    rows = []
    header = f"{'method':<22} {'forward':>8} {'backward':>8} {'planned':>13} {'s/image':>8}  goal ≤ {GOAL}"
    print(header)
    print("-" * len(header))
    for name in names:
        row = measure(name, model, x, target)
        rows.append(row)
        planned = f"{row['planned_forward']}+{row['planned_backward']}"
        verdict = "yes" if row["within_goal"] else ("exempt" if name in EXEMPT else "NO")
        print(f"{name:<22} {row['forward']:>8.0f} {row['backward']:>8.0f} {planned:>13} {row['seconds']:>8.2f}  "
              f"{verdict}", flush=True)
    failing = [row["method"] for row in rows if not row["within_goal"] and row["method"] not in EXEMPT]
    write_result("big_images", {
        "model": {"name": "resnet50-shape", "base_width": args.width, "blocks": [3, 4, 6, 3],
                  "parameters": parameters, "forward_seconds_per_image": forward_seconds},
        "images": args.images, "size": args.size, "goal_passes_per_image": GOAL, "exempt": EXEMPT,
        "methods": rows, "failing": failing,
    })
    if failing:
        print(f"over the goal of {GOAL} passes per image: {', '.join(failing)}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
