"""MkDocs hooks of the API reference (`make docs`): the command-line page, generated offline.

``cli.md`` is not a file in ``docs/``: it is written at build time from :func:`freqlens.cli.build_parser`,
one section per command and sub-command with its ``--help`` text (wrapped at 100 columns whatever the
terminal), so the page always matches the installed command line.
"""

from __future__ import annotations

import argparse
import os
from contextlib import contextmanager

from mkdocs.structure.files import File

CLI_PAGE = "cli.md"
WIDTH = "100"

INTRO = """# Command line

`freqlens COMMAND [options]` (also `python -m freqlens`). A user error (bad file, unknown name, wrong
shape) prints one readable line on stderr and exits with status 2; `--debug` shows the traceback.
The commands that compute write their results under `--out DIR` (JSON, PNG figures, `maps.pt`,
`report.html`). Every command that reads a model (`explain`, `evaluate`, `attack`, `analyze`) takes `--checkpoint PATH|zoo:NAME` (a freqlens checkpoint, a zoo
entry, a TorchScript file or a `torch.export` archive) or `--model PKG.MODULE:FACTORY --weights FILE`
(see [Your model at 224 px](tutorial-224.md)).

This page is generated from the parser itself (`freqlens COMMAND --help`).
"""


@contextmanager
def _columns(width: str):
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:  # argparse has no public accessor for sub-commands
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases map to the same parser
                    seen.add(id(sub))
                    found.append((name, sub))
    return found


def _heading(prog: str, level: int) -> str:
    # ids of their own (cli-freqlens-train): "freqlens" is also the id of the top-level reference heading
    return f"{'#' * level} `{prog}` {{#cli-{prog.replace(' ', '-')}}}"


def _sections(parser: argparse.ArgumentParser, level: int) -> list[str]:
    lines = []
    for _, sub in _subparsers(parser):
        lines += [_heading(sub.prog, level), "", "```text", sub.format_help().rstrip(), "```", ""]
        lines += _sections(sub, level + 1)
    return lines


def cli_markdown() -> str:
    """The Markdown of the command-line page: the top-level help, then every (sub-)command's."""
    from freqlens.cli import build_parser

    with _columns(WIDTH):
        parser = build_parser()
        lines = [INTRO, _heading(parser.prog, 2), "", "```text", parser.format_help().rstrip(), "```", ""]
        lines += _sections(parser, 2)
    return "\n".join(lines)


def on_files(files, config):
    files.append(File.generated(config, CLI_PAGE, content=cli_markdown()))
    return files
