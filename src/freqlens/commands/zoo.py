"""``freqlens zoo``: the trained models shipped with freqlens.

``freqlens zoo list`` prints the table of the manifest; ``freqlens zoo show NAME`` its entry as JSON;
``freqlens zoo build NAME --out DIR [--data PATH] [--dry-run] [--quiet]`` retrains an entry with the command the
manifest records (its ``--out`` replaced by DIR, its data by ``--data``). ``$FREQLENS_ZOO_DIR`` points
at another zoo folder. Scripts that add entries (``scripts/zoo_add.py``) parse commands with
:func:`train_argv`.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from freqlens.errors import FreqlensError

_COLUMNS = ("name", "architecture", "dataset", "mode", "test acc", "robust acc", "sample acc", "MB", "minutes")


def train_argv(command: str) -> list[str]:
    """The arguments of the ``freqlens`` command line ``command`` (what :func:`freqlens.cli.main` takes).

    Accepts ``freqlens ...``, ``/path/to/freqlens ...`` and ``python -m freqlens ...``.

    Raises:
        FreqlensError: the command is not a ``freqlens ... train ...`` command line.
    """
    try:
        tokens = shlex.split(command)
    except ValueError as error:
        raise FreqlensError(f"cannot parse the command {command!r}: {error}") from None
    for index, token in enumerate(tokens):
        if Path(token).name == "freqlens":
            argv = tokens[index + 1:]
            break
    else:
        raise FreqlensError(f"not a freqlens command line (no 'freqlens' program in it): {command!r}")
    if "train" not in argv:
        raise FreqlensError(f"not a 'freqlens train' command line: {command!r}")
    return argv


def option_value(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` in ``argv`` (``--flag VALUE`` or ``--flag=VALUE``; the last one wins)."""
    value = None
    for index, token in enumerate(argv):
        if token == flag and index + 1 < len(argv):
            value = argv[index + 1]
        elif token.startswith(flag + "="):
            value = token[len(flag) + 1:]
    return value


def set_option(argv: list[str], flag: str, value: str) -> list[str]:
    """A copy of ``argv`` with every ``flag`` set to ``value`` (appended when absent)."""
    result, index, found = [], 0, False
    while index < len(argv):
        token = argv[index]
        if token == flag and index + 1 < len(argv):
            result += [flag, value]
            index, found = index + 2, True
            continue
        if token.startswith(flag + "="):
            token, found = f"{flag}={value}", True
        result.append(token)
        index += 1
    return result if found else [*result, flag, value]


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def zoo_table(items) -> str:
    """The ``zoo list`` table of the entries ``items`` (aligned plain-text columns)."""
    rows = [[item.name, item.architecture, item.dataset, item.mode, _percent(item.test_accuracy),
             _percent(item.robust_accuracy), _percent(item.sample_accuracy), f"{item.size_mb:.2f}",
             "—" if item.minutes is None else f"{item.minutes:.1f}"] for item in items]
    widths = [max(len(str(row[col])) for row in [list(_COLUMNS), *rows]) for col in range(len(_COLUMNS))]
    numeric = {4, 5, 6, 7, 8}
    lines = []
    for row in [list(_COLUMNS), *rows]:
        cells = [str(cell).rjust(width) if col in numeric else str(cell).ljust(width)
                 for col, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    from freqlens.models import zoo

    items = zoo.entries()
    if not items:
        print(f"the zoo is empty ({zoo.manifest_path()} lists no model)")
        return 0
    print(zoo_table(items))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from freqlens.models import zoo

    print(json.dumps(zoo.entry(args.name).to_dict(), indent=2))
    return 0


def build_argv(command: str, out: Path, data: str | None) -> list[str]:
    """The ``freqlens`` arguments that retrain an entry: its ``command`` with ``--out`` set to ``out`` and,
    with ``data``, ``--dataset`` (a path) or ``--data-dir`` (a named dataset such as ``mnist``) set to it."""
    from freqlens.data import DATASET_NAMES

    argv = set_option(train_argv(command), "--out", str(out))
    if data is not None:
        dataset = option_value(argv, "--dataset") or ""
        flag = "--data-dir" if dataset.strip().lower() in DATASET_NAMES else "--dataset"
        argv = set_option(argv, flag, data)
    return argv


def _check_data(argv: list[str]) -> None:
    """A one-line error when the recorded data path of the command does not exist here."""
    from freqlens.data import DATASET_NAMES

    dataset = option_value(argv, "--dataset") or ""
    data_dir = option_value(argv, "--data-dir")
    missing = None
    if dataset.strip().lower() not in DATASET_NAMES and not Path(dataset).expanduser().exists():
        missing = dataset
    elif data_dir is not None and not Path(data_dir).expanduser().exists():
        missing = data_dir
    if missing is not None:
        raise FreqlensError(f"the recorded training data {missing} is not found from {Path.cwd()}; "
                            f"pass --data PATH (e.g. the CIFAR-10 archive or the MNIST folder)")


def _cmd_build(args: argparse.Namespace) -> int:
    """``zoo build``: print the recorded command (``--dry-run``) or run it with ``args.main`` (the entry point
    of the command line, :func:`freqlens.cli.main`, which its parser sets: commands do not import the cli)."""
    from freqlens.models import zoo

    item = zoo.entry(args.name)
    argv = build_argv(item.command, args.out, None if args.data is None else str(args.data))
    if args.quiet and "--quiet" not in argv:
        argv.append("--quiet")
    shown = shlex.join(["freqlens", *argv])
    if args.dry_run:
        print(shown)
        return 0
    _check_data(argv)
    print(f"retraining {item.name} (recorded test accuracy {_percent(item.test_accuracy)}): {shown}", flush=True)
    return args.main(argv)


def add_parser(commands) -> None:
    """Add ``freqlens zoo {list,show,build}`` to the sub-parsers ``commands``."""
    from freqlens.commands._common import add_quiet_flag

    parser = commands.add_parser("zoo", help="the trained models shipped with freqlens: list, show, build")
    actions = parser.add_subparsers(dest="zoo_command", metavar="ACTION")
    actions.required = True
    lister = actions.add_parser("list", help="table of the zoo: accuracy, robust accuracy, size, training time")
    add_quiet_flag(lister)
    lister.set_defaults(run=_cmd_list)
    show = actions.add_parser("show", help="one entry of the manifest as JSON")
    show.add_argument("name")
    add_quiet_flag(show)
    show.set_defaults(run=_cmd_show)
    build = actions.add_parser("build", help="retrain an entry with its recorded freqlens train command")
    build.add_argument("name")
    build.add_argument("--out", type=Path, required=True, help="output folder (replaces the recorded --out)")
    build.add_argument("--data", default=None, metavar="PATH",
                       help="the training data when not at the recorded relative path: the CIFAR-10 archive "
                            "(replaces --dataset) or the folder of a named dataset (sets --data-dir)")
    build.add_argument("--dry-run", action="store_true", help="print the command, do not train")
    add_quiet_flag(build)  # passed on to the train command
    build.set_defaults(run=_cmd_build)
