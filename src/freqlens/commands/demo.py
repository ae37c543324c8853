"""``freqlens demo``: the four studies at demo scale on the embedded sample -> ``OUT/report.html``.

Needs no download: the studies run on the CIFAR-10 sample shipped with freqlens, their trained models
cached in ``--cache`` (default ``OUT/cache``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from freqlens.commands._common import add_quiet_flag


def _cmd_demo(args: argparse.Namespace) -> int:
    from freqlens.studies import run_demo

    studies = [name.strip() for name in args.studies.split(",") if name.strip()] if args.studies else None
    report = run_demo(args.out, studies, cache_dir=args.cache, progress=not args.quiet)
    print(f"report written to {report}")
    return 0


def add_parser(commands: Any) -> None:
    """Add ``demo`` to the ``freqlens`` sub-commands."""
    demo = commands.add_parser(
        "demo", help="the four studies at demo scale on the embedded sample -> OUT/report.html (no download)"
    )
    demo.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default: demo-out)")
    demo.add_argument("--studies", default=None, metavar="A,B",
                      help="comma-separated subset of the studies (default: all four)")
    demo.add_argument("--cache", type=Path, default=None, help="trained-model cache (default OUT/cache)")
    add_quiet_flag(demo)
    demo.set_defaults(run=_cmd_demo)
