"""The static report: built from artefacts only, self-contained, escaped, claims marked."""

from __future__ import annotations

import base64
import json

import pytest
import torch

from freqlens.errors import FreqlensError
from freqlens.report import attribution_grid, find_studies, write_report


def _study(root, name, **results):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"study": name, **results}))
    return folder


def test_report_embeds_figures_and_marks_claims(tmp_path):
    folder = _study(
        tmp_path, "b-study", title="B <study>",
        figures=[{"file": "grid.png", "caption": "maps & spectra"}, {"file": "absent.png", "caption": "x"}],
        claims=[
            {"claim": "smooth beats noisy", "seed": "001", "figure": "3", "measured": 0.2, "expected": "< 0.5", "holds": True},
            {"claim": "never true", "seed": "001", "figure": "4", "measured": 2.0, "expected": "< 1", "holds": False},
        ],
        tables=[{"title": "T", "columns": ["a", "b"], "rows": [[1, 0.123456]]}],
        command="freqlens study x",
    )
    grid = attribution_grid(torch.rand(3, 1, 8, 8), [("m", torch.randn(3, 8, 8)), ("p", torch.rand(3, 8, 8), "magnitude")],
                            folder / "grid.png")
    _study(tmp_path, "a-study", title="A")
    page = write_report(tmp_path).read_text()
    assert page.index("<h2 id='a-study'>A</h2>") < page.index("<h2 id='b-study'>B &lt;study&gt;</h2>")
    embedded = page.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(embedded) == grid.read_bytes()
    assert "maps &amp; spectra" in page
    assert "missing figure absent.png" in page
    assert page.count("class='holds'") == 1 and page.count("class='fails'") == 2  # one failed claim + one missing figure
    assert "0.1235" in page and "freqlens study x" in page
    assert "<script" not in page.lower()


def test_report_errors(tmp_path):
    with pytest.raises(FreqlensError, match="no study results"):
        write_report(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    with pytest.raises(FreqlensError, match="cannot read study results"):
        find_studies(tmp_path)


def test_report_orders_studies_and_counts_claims(tmp_path):
    claim = {"claim": "c", "seed": "000", "figure": "f", "measured": "", "expected": ""}
    _study(tmp_path, "a-study", title="A", claims=[{**claim, "holds": True}, {**claim, "holds": False}],
           summary={"total seconds": 1.5})
    _study(tmp_path, "b-study", title="B", claims=[{**claim, "holds": True}])
    _study(tmp_path, "c-study", title="C")
    page = write_report(tmp_path, order=["c-study", "b-study"]).read_text()
    sections = [page.index(f"<h2 id='{name}'>") for name in ("c-study", "b-study", "a-study")]
    assert sections == sorted(sections)  # the named studies first in the given order, then the rest
    overview = page.split("<nav>")[1].split("</nav>")[0]
    assert "<td>1 / 2</td><td>1.5</td>" in overview and "<td>1 / 1</td>" in overview and "<td>0 / 0</td>" in overview


def test_overview_lists_the_analysed_models(tmp_path):
    _study(tmp_path, "noise-tunnel", title="NT", analysed_models=[
        {"role": "explained", "model": "zoo:lenet-cifar10-standard", "test accuracy": 0.661, "robust accuracy": None}])
    _study(tmp_path, "forgrad", title="FG")
    page = write_report(tmp_path).read_text()
    head, _, _ = page.partition("<h2")  # the overview, before the first study section
    assert "<h3>Models analysed</h3>" in head
    assert "<td>noise-tunnel</td><td>explained</td><td>zoo:lenet-cifar10-standard</td><td>0.661</td><td>—</td>" in head


def test_report_without_analysed_models_has_no_models_table(tmp_path):
    _study(tmp_path, "forgrad", title="FG")
    assert "Models analysed" not in write_report(tmp_path).read_text()
