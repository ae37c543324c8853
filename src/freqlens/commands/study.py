"""``freqlens study NAME``: run a study (config dataclass -> results.json + PNG figures) into
``--out DIR/<study>/`` and write ``DIR/report.html``.

Studies: ``noise-modulation`` (seed 000), ``forgrad`` (001), ``frequency-robustness`` (002/003),
``noise-tunnel`` (004). Scales: ``demo`` (seconds, the shipped sample), ``cpu`` (CIFAR-10, tens of minutes
on a laptop CPU), ``paper`` (seed-like numbers); ``--config FILE.toml`` and ``--set key=value`` override
single numbers of the preset.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    from freqlens.commands._common import add_quiet_flag
    from freqlens.studies.base import SCALES
    from freqlens.studies.registry import STUDIES

    parser = commands.add_parser("study", help="run a study and write report.html: " + ", ".join(STUDIES))
    parser.add_argument("study", choices=list(STUDIES))
    parser.add_argument("--scale", choices=SCALES, default="demo", help="preset of all numbers (default demo)")
    parser.add_argument("--config", type=Path, default=None, help="TOML file with config keys to override")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys (repeatable; applied after --config), "
                             "e.g. --set dataset=path/to/cifar10-jpeg.tar.gz")
    parser.add_argument("--cache", type=Path, default=None, help="trained-model cache (default OUT/cache)")
    parser.add_argument("--out", type=Path, required=True)
    add_quiet_flag(parser, aliases=["--no-progress"])  # --no-progress: the former spelling, kept for old scripts
    parser.set_defaults(run=_cmd_study)


def _cmd_study(args: argparse.Namespace) -> int:
    from freqlens.report import write_report
    from freqlens.studies.registry import STUDIES, run_study

    command = "freqlens " + " ".join(shlex.quote(part) for part in sys.argv[1:]) if sys.argv[1:2] == ["study"] \
        else None
    results = run_study(args.study, args.out, args.scale, config_file=args.config, overrides=args.overrides,
                        cache_dir=args.cache, progress=not args.quiet, command=command)
    report = write_report(args.out, title="freqlens study report", order=list(STUDIES))
    print(f"{args.study}: results in {results}; report in {report}")
    return 0
