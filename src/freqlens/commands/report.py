"""``freqlens report DIR``: (re)build ``DIR/report.html`` from the study results in ``DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from freqlens.commands._common import add_quiet_flag


def _cmd_report(args: argparse.Namespace) -> int:
    from freqlens.report import write_report
    from freqlens.studies.registry import STUDIES

    print(f"report written to {write_report(args.out, order=list(STUDIES))}")
    return 0


def add_parser(commands: Any) -> None:
    """Add ``report`` to the ``freqlens`` sub-commands."""
    report = commands.add_parser("report", help="(re)build DIR/report.html from the study results in DIR")
    report.add_argument("out", metavar="DIR", type=Path, help="the study folder (also where report.html goes)")
    add_quiet_flag(report)
    report.set_defaults(run=_cmd_report)
