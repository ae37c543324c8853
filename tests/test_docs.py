"""The API reference (`make docs`): builds with ``mkdocs build --strict`` and documents every public name.

The build runs once per session in a temporary folder (``mkdocs.yml`` at the repository root; offline: the
built-in theme, no plugin that fetches anything). It needs the ``docs`` extra (also in ``dev``) and
skips with a reason without it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: The public modules, each with its reference page (docs/reference/<page>.md).
PAGES = {
    "freqlens": "freqlens",
    "freqlens.attribution": "attribution",
    "freqlens.metrics": "metrics",
    "freqlens.spectral": "spectral",
    "freqlens.analysis": "analysis",
    "freqlens.attacks": "attacks",
    "freqlens.training": "training",
    "freqlens.models": "models",
    "freqlens.data": "data",
    "freqlens.report": "report",
    "freqlens.interop": "interop",
    "freqlens.zoo": "zoo",
    "freqlens.errors": "errors",
}

def _missing_packages() -> list[str]:
    missing = []
    for module, package in (("mkdocs", "mkdocs"), ("mkdocstrings", "mkdocstrings"),
                            ("mkdocstrings_handlers.python", "mkdocstrings-python")):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(package)
    return missing


def public_names(module_name: str) -> list[str]:
    """``__all__``, or for a module without one the public names it defines itself."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [name for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module_name
            and (inspect.isclass(value) or inspect.isfunction(value))]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = _missing_packages()
    if missing:
        pytest.skip(f"the docs extra is not installed ({', '.join(missing)} missing: pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), NO_COLOR="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert not warnings, "mkdocs warned:\n" + "\n".join(warnings)
    return out


def _ids(page: Path) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', page.read_text(encoding="utf-8")))


@pytest.mark.parametrize("module_name", sorted(PAGES))
def test_every_public_name_is_documented(site: Path, module_name: str) -> None:
    page = site / "reference" / f"{PAGES[module_name]}.html"
    assert page.is_file(), f"no reference page for {module_name}"
    ids = _ids(page)
    assert module_name in ids, f"{page.name} does not document the module {module_name}"
    names = public_names(module_name)
    assert names, f"{module_name} exports nothing"
    missing = [name for name in names if f"{module_name}.{name}" not in ids]
    assert not missing, f"{page.name} lacks an entry for {', '.join(f'{module_name}.{n}' for n in missing)}"


def test_pages_and_command_line(site: Path) -> None:
    for page in ("index.html", "conventions.html", "tutorial-224.html", "cli.html"):
        assert (site / page).is_file(), page
    conventions = (site / "conventions.html").read_text(encoding="utf-8")
    for needle in ("pixel_range", "B×C×H×W", "cycles per image", "Nyquist", "magnitude", "signed",
                   "generator", "batch_size"):
        assert needle in conventions, needle

    # the command-line page holds every command's --help (sub-commands included)
    from freqlens.cli import build_parser

    ids = _ids(site / "cli.html")
    text = (site / "cli.html").read_text(encoding="utf-8")

    def walk(parser: argparse.ArgumentParser) -> None:
        assert f"cli-{parser.prog.replace(' ', '-')}" in ids, f"cli.html has no section for {parser.prog}"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif action.option_strings and action.help != argparse.SUPPRESS:
                assert action.option_strings[-1] in text, f"{parser.prog}: {action.option_strings[-1]} not in cli.html"

    walk(build_parser())


def test_no_network_at_build_or_view_time(site: Path) -> None:
    """The built pages load nothing from another host (no web fonts, CDN scripts or styles)."""
    remote = re.compile(r'(?:src|href)="(?:https?:)?//[^"]+"')
    for page in site.rglob("*.html"):
        loads = [m for m in remote.findall(page.read_text(encoding="utf-8"))
                 if m.startswith("src") or ".css" in m or ".js" in m]
        assert not loads, f"{page.relative_to(site)} loads remote resources: {loads[:3]}"
