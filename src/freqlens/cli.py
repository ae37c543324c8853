"""The ``freqlens`` command: a thin face over the library.

The sub-commands live in :mod:`freqlens.commands` (one module each, listed in :data:`COMMANDS`; their shared
flags in :mod:`freqlens.commands._common`); this module builds the parser and runs the chosen command.

User errors (unknown dataset or model, missing or corrupt file, bad flag value) print one readable
line on stderr and exit with status 2, without a traceback; so do filesystem faults (an output folder
that is a file or read-only, a full disk), after which the empty folders the command created are removed
again. Every output folder (the flags named in :data:`OUTPUT_ARGS`) is checked before any work. Warnings
print as ``freqlens: warning: MESSAGE``. Every command takes ``--quiet``
(:func:`~freqlens.commands._common.add_quiet_flag`): no progress bars or informational lines on stderr;
errors and warnings still print.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TextIO

from freqlens import __version__
from freqlens.commands import analyze, attack, demo, evaluate, explain, report, study, train, zoo
from freqlens.commands._common import positive_int
from freqlens.errors import FreqlensError
from freqlens.utils.env import env_positive_int
from freqlens.utils.io import prepare_output_dir, removing_created_dirs_on_error

OUTPUT_ARGS: tuple[str, ...] = ("out", "cache")
"""Attributes of the parsed arguments that name folders a command writes: each one set is checked (and
created) with :func:`~freqlens.utils.io.prepare_output_dir` before the command does any work."""

COMMANDS: tuple[ModuleType, ...] = (demo, train, explain, evaluate, attack, analyze, study, zoo, report)
"""The modules of the sub-commands, in the order of ``freqlens --help``: each adds its sub-command with
``add_parser(commands)``."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``freqlens`` command line.

    Returns:
        The parser: the global flags and one sub-parser per module of :data:`COMMANDS`; a parsed command
        line has ``run`` (the command's handler) and ``main`` (:func:`main`, for a command that runs another
        command line, as ``zoo build`` does).
    """
    parser = argparse.ArgumentParser(
        prog="freqlens",
        description="Frequency-aware explanation of image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"freqlens {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch CPU threads (default $FREQLENS_THREADS, else torch's choice); on a busy machine "
                             "fewer threads than cores avoid oversubscription")
    parser.set_defaults(main=main)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for module in COMMANDS:
        module.add_parser(commands)
    return parser


def _set_threads(threads: int | None) -> None:
    """``torch.set_num_threads`` from ``--threads`` or ``$FREQLENS_THREADS`` (a positive integer)."""
    if threads is None:
        threads = env_positive_int("FREQLENS_THREADS")
        if threads is None:
            return
    import torch

    torch.set_num_threads(threads)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """``warnings.showwarning`` of the command line: ``freqlens: warning: MESSAGE`` on stderr (no source
    file, line number or code line, which mean nothing to a user of the command)."""
    print(f"freqlens: warning: {message}", file=sys.stderr if file is None else file)


def _prepare_outputs(args: argparse.Namespace) -> None:
    """Check (and create) every output folder of the command (:data:`OUTPUT_ARGS`) before any work; a
    ``--dry-run`` writes nothing, so its folders are left alone."""
    if getattr(args, "dry_run", False):
        return
    for name in OUTPUT_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, Path):
            setattr(args, name, prepare_output_dir(value))


def _os_error_line(error: OSError) -> str:
    """One line for a filesystem fault: ``FILE: REASON`` (e.g. ``run/x.pt: Permission denied``)."""
    reason = error.strerror or str(error) or type(error).__name__
    return reason if error.filename is None else f"{error.filename}: {reason}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``freqlens`` command line.

    Args:
        argv: The arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 on a user error or a filesystem fault (one line on stderr, no
        traceback unless ``--debug``; the empty folders the command created are removed), 130 when
        interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings(), removing_created_dirs_on_error():
            warnings.showwarning = _show_warning
            _set_threads(args.threads)
            _prepare_outputs(args)
            return int(args.run(args) or 0)
    except FreqlensError as error:
        if args.debug:
            raise
        print(f"freqlens: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `freqlens zoo list | head`: the reader left; not an error of ours
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1  # as the Python documentation advises (signal.SIGPIPE is not restored)
    except OSError as error:
        if args.debug:
            raise
        print(f"freqlens: error: {_os_error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("freqlens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
