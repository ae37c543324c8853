"""Attribution benchmark (a script, not a test): cost of the noise tunnel and of Integrated Gradients.

    python benchmarks/attribution.py                # n = 50, 32 images 3×32×32, resnet_small
    python benchmarks/attribution.py --threads 1    # pin intra-op threads (busy machines)

Measures, on ``resnet_small`` (freqlens.models; a local stand-in if the zoo is missing):

* ``overhead``: time of SmoothGrad / VarGrad (n = 50) and IG (50 steps) ÷ the time of 50 Saliency
  calls on the same images at Saliency's best chunk size. Goal ≤ 1.10.
* ``speedup_vs_captum``: Captum ``NoiseTunnel(Saliency)`` (n = 50, ``nt_samples_batch_size=10``) time ÷
  our SmoothGrad time. Goal ≥ 1.4 (skipped when captum is not installed).
* ``memory_ratio``: peak RSS (VmHWM) of a fresh process running SmoothGrad with n = 200 ÷ with n = 10
  (whole process, and the increment over the RSS before the first attribution). Goal ≤ 1.1.

Writes ``benchmarks/results/attribution.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
from _common import best_time, write_result
from torch import nn

IMAGES, CHANNELS, SIZE, CLASSES = 32, 3, 32, 10


def build_model() -> tuple[nn.Module, str]:
    """``resnet_small`` from the zoo, or a similar local network when the zoo is unavailable."""
    try:
        from freqlens.models import build

        return build("resnet_small", in_channels=CHANNELS, num_classes=CLASSES, image_size=SIZE).eval(), "resnet_small"
    except Exception:  # noqa: BLE001 - any failure: fall back to the stand-in
        def block(cin: int, cout: int, stride: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        model = nn.Sequential(nn.Conv2d(CHANNELS, 32, 3, 1, 1), nn.ReLU(), block(32, 32, 1), block(32, 64, 2),
                              block(64, 128, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, CLASSES))
        return model.eval(), "stand-in (resnet_small unavailable)"


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(IMAGES, CHANNELS, SIZE, SIZE, generator=generator)
    return x, torch.randint(0, CLASSES, (IMAGES,), generator=generator)


def timings(n: int, repeat: int) -> dict:
    """Best-of-``repeat`` seconds per method, measured in interleaved rounds (fair on a busy CPU)."""
    from freqlens.attribution import IntegratedGradients, Saliency, SmoothGrad, VarGrad, auto_batch_size

    model, name = build_model()
    x, target = data()
    saliency = {bs: best_time(lambda bs=bs: Saliency(model, batch_size=bs)(x, target), repeat=5)
                for bs in (8, 16, 32)}
    best_bs = min(saliency, key=saliency.get)
    best_saliency = Saliency(model, batch_size=best_bs)
    gen = lambda: torch.Generator().manual_seed(0)
    methods = {
        # the unit: n Saliency calls at the best chunk, timed as one block of the same length as the others
        f"{n} x Saliency": lambda: [best_saliency(x, target) for _ in range(n)],
        "SmoothGrad": lambda: SmoothGrad(Saliency(model), n=n, generator=gen())(x, target),
        "VarGrad": lambda: VarGrad(Saliency(model), n=n, generator=gen())(x, target),
        "IntegratedGradients": lambda: IntegratedGradients(model, steps=n)(x, target),
    }
    try:
        from captum.attr import NoiseTunnel
        from captum.attr import Saliency as CaptumSaliency

        methods["Captum NoiseTunnel(Saliency)"] = lambda: NoiseTunnel(CaptumSaliency(model)).attribute(
            x.clone().requires_grad_(), nt_type="smoothgrad", nt_samples=n, nt_samples_batch_size=10,
            stdevs=0.15, target=target, abs=False)
    except ImportError:
        pass
    for fn in methods.values():  # warm-up (allocator, automatic chunk probe)
        fn()
    seconds = {key: float("inf") for key in methods}
    for _ in range(repeat):
        for key, fn in methods.items():
            begin = time.perf_counter()
            fn()
            seconds[key] = min(seconds[key], time.perf_counter() - begin)
    unit = seconds.pop(f"{n} x Saliency")
    captum_seconds = seconds.pop("Captum NoiseTunnel(Saliency)", None)
    result = {
        "model": name,
        "images": list(x.shape),
        "n": n,
        "auto_batch_size": auto_batch_size(model, x),
        "saliency_seconds_by_chunk": {str(k): v for k, v in saliency.items()},
        "saliency_best_chunk": best_bs,
        "n_saliency_seconds": unit,
        "seconds": seconds,
        "overhead": {key: value / unit for key, value in seconds.items()},
        "overhead_goal": 1.10,
        "captum": None,
    }
    if captum_seconds is not None:
        result["captum"] = {"NoiseTunnel(Saliency)_seconds": captum_seconds,
                            "speedup_vs_captum": captum_seconds / seconds["SmoothGrad"], "speedup_goal": 1.4}
    return result


def _status_bytes(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc (per address space: unlike
    ``ru_maxrss``, not inherited from the parent that spawned us)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_child(n: int) -> None:
    """Run in a fresh process: print peak RSS and the RSS before the first attribution (bytes)."""
    from freqlens.attribution import Saliency, SmoothGrad

    model, _ = build_model()
    x, target = data()
    before = _status_bytes("VmRSS")
    SmoothGrad(Saliency(model), n=n, generator=torch.Generator().manual_seed(0))(x, target)
    peak = _status_bytes("VmHWM")
    print(json.dumps({"peak": peak, "before": before}))


def memory(threads: int | None) -> dict:
    out = {}
    for n in (10, 200):
        command = [sys.executable, __file__, "--memory-child", str(n)]
        if threads:
            command += ["--threads", str(threads)]
        out[n] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    peak_ratio = out[200]["peak"] / out[10]["peak"]
    increments = {n: out[n]["peak"] - out[n]["before"] for n in out}
    return {
        "peak_rss_bytes": {str(n): v["peak"] for n, v in out.items()},
        "increment_bytes": {str(n): v for n, v in increments.items()},
        "memory_ratio": peak_ratio,
        "increment_ratio": increments[200] / max(increments[10], 1),
        "memory_goal": 1.1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args.memory_child)
        return 0
    start = time.perf_counter()
    result = timings(args.n, args.repeat)
    result["memory"] = memory(args.threads)
    result["threads"] = torch.get_num_threads()
    result["load_average_1min"] = os.getloadavg()[0]
    result["note"] = "CPU shared with other jobs while measuring: timings are pessimistic and noisy."
    result["wall_seconds"] = time.perf_counter() - start

    print(f"model: {result['model']}, images {result['images']}, n = {args.n}, threads {result['threads']}, "
          f"auto chunk {result['auto_batch_size']}, best Saliency chunk {result['saliency_best_chunk']}")
    for key, value in result["overhead"].items():
        print(f"  {key:<20s} time / ({args.n} × Saliency) = {value:.3f}   (goal ≤ 1.10)")
    if result["captum"]:
        print(f"  speed-up over Captum NoiseTunnel(Saliency, nt_samples_batch_size=10): "
              f"{result['captum']['speedup_vs_captum']:.2f}×   (goal ≥ 1.4)")
    else:
        print("  captum not installed: comparison skipped")
    mem = result["memory"]
    print(f"  peak RSS SmoothGrad n=200 / n=10 = {mem['memory_ratio']:.3f} (goal ≤ 1.1); "
          f"increment over pre-attribution RSS: {mem['increment_ratio']:.3f} "
          f"({mem['increment_bytes']['200'] / 2**20:.1f} MiB vs {mem['increment_bytes']['10'] / 2**20:.1f} MiB)")
    write_result("attribution", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
