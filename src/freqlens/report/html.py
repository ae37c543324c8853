"""Static, self-contained HTML report built from study artefacts only.

Each study writes ``DIR/<study>/results.json`` with (all optional but ``title``)::

    {"study": str, "title": str, "description": str, "command": str, "config": {...},
     "summary": {name: value}, "figures": [{"file": "x.png", "caption": str}],
     "tables": [{"title": str, "columns": [...], "rows": [[...], ...]}],
     "claims": [{"claim", "seed", "figure", "measured", "expected", "holds"}],
     "analysed_models": [{"role", "model", "test accuracy", "robust accuracy"}]}

:func:`write_report` gathers every such file under ``DIR`` into ``DIR/report.html``; figures are
embedded as base64 PNG so the page works offline, on its own, without JavaScript.

Results files may come from elsewhere (a colleague's archive), so :func:`check_results` validates each one
before anything is rendered: a malformed file, or a figure entry that leaves its study folder (absolute
path, ``..``, a symlink pointing out) or is not a PNG file, is a :class:`~freqlens.errors.ReportError`
naming the file and the key. Nothing outside a study folder is ever read.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from freqlens.errors import FreqlensError, ReportError
from freqlens.utils import atomic_write_text

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1b1b1b;line-height:1.45}
h1{border-bottom:2px solid #333;padding-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #ccc}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444}
table{border-collapse:collapse;margin:1em 0;font-size:.92em} td,th{border:1px solid #ccc;padding:.25em .6em}
th{background:#f2f2f2} .holds{color:#106b21;font-weight:bold} .fails{color:#a40000;font-weight:bold}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
nav li{margin:.15em 0}
"""


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(v) for v in value)
    return str(value)


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_format(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
"""The eight bytes every PNG file starts with."""


def figure_path(study_dir: Path, file: str, where: str) -> Path | None:
    """The figure ``file`` of a study, resolved inside its study folder.

    Args:
        study_dir: The study folder (the one holding ``results.json``).
        file: The figure entry's ``file``, relative to ``study_dir``.
        where: The entry's name in error messages, e.g. ``"DIR/x/results.json: figures[2].file"``.

    Returns:
        The resolved path of a PNG file inside the study folder, or ``None`` when no such file exists
            (the report marks the figure missing).

    Raises:
        ReportError: The path leaves the study folder (absolute, ``..``, a symlink pointing out) or
            names something that is not a PNG file.
    """
    root = study_dir.resolve()
    try:
        path = (root / file).resolve()
    except (OSError, RuntimeError, ValueError) as error:  # a NUL byte, a symlink loop
        raise ReportError(f"{where} {file!r} is not a usable path ({error})") from None
    if not path.is_relative_to(root):
        raise ReportError(f"{where} {file!r} leaves the study folder")
    if not path.exists():
        return None
    if not path.is_file():
        raise ReportError(f"{where} {file!r} is not a PNG file")
    with path.open("rb") as handle:
        if handle.read(len(PNG_MAGIC)) != PNG_MAGIC:
            raise ReportError(f"{where} {file!r} is not a PNG file")
    return path


def _figure(study_dir: Path, figure: dict, index: int) -> str:
    path = figure_path(study_dir, figure["file"], f"{study_dir / 'results.json'}: figures[{index}].file")
    if path is None:
        return f"<p class='fails'>missing figure {html.escape(figure['file'])}</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = html.escape(figure.get("caption", ""))
    alt = html.escape(figure.get("caption", figure["file"]))
    return (
        f"<figure><img src='data:image/png;base64,{data}' alt='{alt}'>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _claims(claims: list[dict]) -> str:
    rows = []
    for claim in claims:
        verdict = "holds" if claim.get("holds") else "does not hold"
        css = "holds" if claim.get("holds") else "fails"
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(_format(claim.get(key, '')))}</td>"
                for key in ("claim", "seed", "figure", "measured", "expected")
            )
            + f"<td class='{css}'>{verdict}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("claim", "seed", "figure", "measured", "expected", "verdict"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section(study_dir: Path, results: dict) -> str:
    anchor = html.escape(results.get("study", study_dir.name))
    parts = [f"<h2 id='{anchor}'>{html.escape(results.get('title', study_dir.name))}</h2>"]
    if results.get("description"):
        parts.append(f"<p>{html.escape(results['description'])}</p>")
    if results.get("summary"):
        parts.append(_table(["quantity", "value"], [[k, v] for k, v in results["summary"].items()]))
    if results.get("claims"):
        parts.append("<h3>Claims</h3>" + _claims(results["claims"]))
    for index, figure in enumerate(results.get("figures") or []):
        parts.append(_figure(study_dir, figure, index))
    for table in results.get("tables") or []:
        parts.append(f"<h3>{html.escape(table.get('title', ''))}</h3>")
        parts.append(_table(table["columns"], table["rows"]))
    if results.get("command"):
        parts.append(f"<h3>Command</h3><pre>{html.escape(results['command'])}</pre>")
    if results.get("config"):
        config = json.dumps(results["config"], indent=2, default=str)
        parts.append(f"<details><summary>Configuration</summary><pre>{html.escape(config)}</pre></details>")
    return "\n".join(parts)


def _describe(value: Any) -> str:
    """A JSON value as an error message shows it: its kind for containers, itself for scalars."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_objects(results: dict, key: str, fail: Callable[[str, str], NoReturn]) -> list[dict]:
    """``results[key]``, a list of objects (empty when absent or null); ``fail(key, problem)`` otherwise."""
    items = results.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        fail(key, f"must be a list, got {_describe(items)}")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            fail(f"{key}[{index}]", f"must be an object, got {_describe(item)}")
    return items


def check_results(results: Any, results_file: Path) -> None:
    """Check one study's ``results.json`` against the schema of this module before it is rendered.

    Args:
        results: The parsed JSON.
        results_file: Its path (in messages; its folder is the study folder figures must stay in).

    Raises:
        ReportError: One line naming ``results_file`` and the offending key, e.g.
            ``DIR/x/results.json: figures[2].file '/etc/hostname' leaves the study folder``.
    """

    def fail(key: str, problem: str) -> NoReturn:
        raise ReportError(f"{results_file}: {key} {problem}")

    if not isinstance(results, dict):
        raise ReportError(f"{results_file}: the top level must be an object, got {_describe(results)}")
    for key, nullable in (("study", False), ("title", False), ("description", True), ("command", True)):
        if key in results and not isinstance(results[key], str) and not (nullable and results[key] is None):
            fail(key, f"must be a string, got {_describe(results[key])}")
    if results.get("summary") is not None and not isinstance(results["summary"], dict):
        fail("summary", f"must be an object, got {_describe(results['summary'])}")
    _check_objects(results, "claims", fail)
    _check_objects(results, "analysed_models", fail)
    for index, figure in enumerate(_check_objects(results, "figures", fail)):
        if not isinstance(figure.get("file"), str) or not figure["file"]:
            fail(f"figures[{index}].file", "is missing" if "file" not in figure
                 else f"must be a non-empty string, got {_describe(figure['file'])}")
        if not isinstance(figure.get("caption", ""), str):
            fail(f"figures[{index}].caption", f"must be a string, got {_describe(figure['caption'])}")
        figure_path(results_file.parent, figure["file"], f"{results_file}: figures[{index}].file")
    for index, table in enumerate(_check_objects(results, "tables", fail)):
        if not isinstance(table.get("title", ""), str):
            fail(f"tables[{index}].title", f"must be a string, got {_describe(table['title'])}")
        for key in ("columns", "rows"):
            if not isinstance(table.get(key), list):
                fail(f"tables[{index}].{key}",
                     "is missing" if key not in table else f"must be a list, got {_describe(table[key])}")
        for row, cells in enumerate(table["rows"]):
            if not isinstance(cells, list):
                fail(f"tables[{index}].rows[{row}]", f"must be a list, got {_describe(cells)}")


def find_studies(out_dir: str | Path) -> list[tuple[Path, dict]]:
    """Every ``<study>/results.json`` directly under ``out_dir``, sorted by folder name, each checked
    with :func:`check_results`.

    Raises:
        FreqlensError: A results file cannot be read or is not JSON.
        ReportError: A results file is malformed, or is a symlink that leaves its study folder.
    """
    out_dir = Path(out_dir)
    found = []
    for results_file in sorted(out_dir.glob("*/results.json")):
        if not results_file.resolve().is_relative_to(results_file.parent.resolve()):
            raise ReportError(f"{results_file} leaves its study folder")
        if not results_file.parent.resolve().is_relative_to(out_dir.resolve()):
            raise ReportError(f"{results_file.parent} leaves the report folder {out_dir} (a symlink pointing out)")
        try:
            results = json.loads(results_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise FreqlensError(f"cannot read study results {results_file}: {error}") from error
        check_results(results, results_file)
        found.append((results_file.parent, results))
    return found


def _overview(studies: list[tuple[Path, dict]]) -> str:
    """One row per study: its claims that hold out of those checked, and its run time."""
    rows = []
    for study_dir, results in studies:
        claims = results.get("claims") or []
        held = sum(1 for claim in claims if claim.get("holds"))
        seconds = (results.get("summary") or {}).get("total seconds", "")
        name = html.escape(results.get("study", study_dir.name))
        rows.append(f"<tr><td><a href='#{name}'>{html.escape(results.get('title', study_dir.name))}</a></td>"
                    f"<td>{held} / {len(claims)}</td><td>{html.escape(_format(seconds))}</td></tr>")
    head = "<tr><th>study</th><th>claims that hold</th><th>seconds</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>" + _models_table(studies)


def _models_table(studies: list[tuple[Path, dict]]) -> str:
    """The models the studies analysed (their ``analysed_models``: where each came from, e.g. a zoo name,
    and its accuracies), one row per study and model; empty when no study lists any."""
    rows = []
    for study_dir, results in studies:
        for item in results.get("analysed_models") or []:
            cells = [results.get("study", study_dir.name), item.get("role", ""), item.get("model", ""),
                     item.get("test accuracy", ""), item.get("robust accuracy", "")]
            rows.append(cells)
    if not rows:
        return ""
    return "<h3>Models analysed</h3>" + _table(["study", "role", "model", "test accuracy", "robust accuracy"],
                                                 [[cell if cell is not None else "—" for cell in row] for row in rows])


def write_report(out_dir: str | Path, title: str = "freqlens report", order: Sequence[str] = ()) -> Path:
    """Write ``out_dir/report.html`` from the study artefacts found under ``out_dir``: an overview
    (claims that hold per study), then one section per study.

    Args:
        out_dir: the folder holding the studies (``*/results.json``).
        title: the page's title.
        order: study names shown first, in that order; the others follow by folder name.

    Returns:
        The path of ``report.html``.

    Raises:
        FreqlensError: no study results under ``out_dir``.
    """
    out_dir = Path(out_dir)
    rank = {name: position for position, name in enumerate(order)}
    studies = sorted(find_studies(out_dir), key=lambda item: rank.get(item[1].get("study", item[0].name), len(rank)))
    if not studies:
        raise FreqlensError(f"no study results (*/results.json) found under {out_dir}")
    body = "\n".join(_section(d, r) for d, r in studies)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Generated {stamp} by freqlens.</p>"
        f"<nav>{_overview(studies)}</nav>{body}</body></html>\n"
    )
    return atomic_write_text(out_dir / "report.html", page)
