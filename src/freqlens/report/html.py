"""Static, self-contained HTML report built from study artefacts only.

Each study writes ``DIR/<study>/results.json`` with (all optional but ``title``)::

    {"study": str, "title": str, "description": str, "command": str, "config": {...},
     "summary": {name: value}, "figures": [{"file": "x.png", "caption": str}],
     "tables": [{"title": str, "columns": [...], "rows": [[...], ...]}],
     "claims": [{"claim", "seed", "figure", "measured", "expected", "holds"}]}

:func:`write_report` gathers every such file under ``DIR`` into ``DIR/report.html``; figures are
embedded as base64 PNG so the page works offline, on its own, without JavaScript.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from freqlens.errors import FreqlensError
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


def _figure(study_dir: Path, figure: dict) -> str:
    path = study_dir / figure["file"]
    if not path.is_file():
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
    for figure in results.get("figures", []):
        parts.append(_figure(study_dir, figure))
    for table in results.get("tables", []):
        parts.append(f"<h3>{html.escape(table.get('title', ''))}</h3>")
        parts.append(_table(table["columns"], table["rows"]))
    if results.get("command"):
        parts.append(f"<h3>Command</h3><pre>{html.escape(results['command'])}</pre>")
    if results.get("config"):
        config = json.dumps(results["config"], indent=2, default=str)
        parts.append(f"<details><summary>Configuration</summary><pre>{html.escape(config)}</pre></details>")
    return "\n".join(parts)


def find_studies(out_dir: str | Path) -> list[tuple[Path, dict]]:
    """Every ``<study>/results.json`` directly under ``out_dir``, sorted by folder name."""
    out_dir = Path(out_dir)
    found = []
    for results_file in sorted(out_dir.glob("*/results.json")):
        try:
            results = json.loads(results_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise FreqlensError(f"cannot read study results {results_file}: {error}") from error
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
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def write_report(out_dir: str | Path, title: str = "freqlens report", order: Sequence[str] = ()) -> Path:
    """Write ``out_dir/report.html`` from the study artefacts found under ``out_dir``: an overview
    (claims that hold per study), then one section per study — the studies named in ``order`` first, in
    that order, then the others by folder name."""
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
