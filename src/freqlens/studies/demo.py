"""``freqlens demo``: the four studies at ``demo`` scale on the MNIST sample shipped with freqlens, then
one ``report.html``. Nothing is downloaded; the studies share one trained-model cache (``OUT/cache``), so
the standard LeNet they all use is trained once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path

from freqlens.studies.registry import STUDIES, get_study, run_study


def run_demo(
    out_dir: str | Path,
    studies: Iterable[str] | None = None,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    command: str | None = None,
) -> Path:
    """Run ``studies`` (default: all four, in :data:`~freqlens.studies.registry.STUDIES` order) at demo
    scale into ``out_dir`` and return the path of ``out_dir/report.html``. ``progress``: tqdm bars and a
    line per study on stderr (off by default; ``freqlens demo`` turns them on unless ``--quiet``)."""
    from freqlens.report import write_report

    names = list(studies) if studies is not None else list(STUDIES)
    for name in names:
        get_study(name)  # unknown names fail before anything runs
    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    started = time.perf_counter()
    for position, name in enumerate(names, 1):
        study_started = time.perf_counter()
        if progress:
            print(f"[{position}/{len(names)}] study {name} ...", file=sys.stderr, flush=True)
        run_study(name, out_dir, "demo", cache_dir=cache_dir, progress=progress,
                  command=command or f"freqlens study {name} --scale demo --out {out_dir}")
        if progress:
            print(f"[{position}/{len(names)}] study {name} done in {time.perf_counter() - study_started:.1f} s",
                  file=sys.stderr, flush=True)
    report = write_report(out_dir, title="freqlens demo report", order=list(STUDIES))
    if progress:
        print(f"demo finished in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return report
