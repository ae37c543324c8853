"""``freqlens study NAME``: run a study (config dataclass -> results.json + PNG figures) into
``--out DIR/<study>/`` and write ``DIR/report.html``.

Implemented: ``noise-tunnel`` (seed 004). Scales: ``demo`` (seconds, the shipped sample), ``cpu``,
``paper``; ``--config FILE.toml`` and ``--set key=value`` override single numbers.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

STUDIES = ("noise-tunnel",)


def add_parser(commands: Any) -> None:
    from freqlens.studies.base import SCALES

    parser = commands.add_parser("study", help="run a study and write report.html: " + ", ".join(STUDIES))
    parser.add_argument("study", choices=STUDIES)
    parser.add_argument("--scale", choices=SCALES, default="demo", help="preset of all numbers (default demo)")
    parser.add_argument("--config", type=Path, default=None, help="TOML file with config keys to override")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (repeatable; applied after --config)")
    parser.add_argument("--cache", type=Path, default=None, help="trained-model cache (default OUT/cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--out", type=Path, required=True)
    parser.set_defaults(run=_cmd_study)


def _cmd_study(args: argparse.Namespace) -> int:
    from freqlens.report import write_report
    from freqlens.studies.base import load_config
    from freqlens.studies.noise_tunnel import NoiseTunnelConfig, run_noise_tunnel

    config = load_config(NoiseTunnelConfig, NoiseTunnelConfig.for_scale(args.scale), args.config, args.overrides)
    command = "freqlens " + " ".join(shlex.quote(part) for part in sys.argv[1:]) if sys.argv[1:2] == ["study"] \
        else None
    results = run_noise_tunnel(args.out, config, args.scale, cache_dir=args.cache, progress=not args.no_progress,
                               command=command)
    report = write_report(args.out, title="freqlens study report")
    print(f"{args.study}: results in {results}; report in {report}")
    return 0
