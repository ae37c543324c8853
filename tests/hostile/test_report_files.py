"""``freqlens report DIR`` on hostile study folders: it never reads outside a study folder, embeds only
real PNG files, and refuses a malformed ``results.json`` with one line naming the file and the key."""

from __future__ import annotations

import base64
import json
import os

import pytest
from PIL import Image

from freqlens.cli import main
from freqlens.errors import ReportError
from freqlens.report import write_report

from .conftest import one_error_line

SECRET = b"\x89PNG\r\n\x1a\n top secret bytes outside the study folder"


def _png(path):
    """A real (tiny) PNG file at ``path``; returns its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (3, 2), color=7).save(path)
    return path.read_bytes()


def _study(root, results):
    """``root/report/forgrad/results.json`` holding ``results`` next to a real ``grid.png``."""
    folder = root / "report" / "forgrad"
    _png(folder / "grid.png")
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def _report(capsys, folder):
    """Run ``freqlens report`` on the report folder holding ``folder``; returns (exit code, stderr line or None)."""
    code = main(["report", str(folder.parent)])
    return code, (one_error_line(capsys) if code else None)


def _escape_cases(root):
    """(figure file entry, preparation) pairs: each entry names ``root/secret.png`` from outside."""
    (root / "secret.png").write_bytes(SECRET)
    folder = root / "report" / "forgrad"
    folder.mkdir(parents=True)
    os.symlink(root / "secret.png", folder / "link.png")
    os.symlink(root, folder / "sub")
    return {"absolute": str(root / "secret.png"), "dotdot": "../../secret.png", "symlink": "link.png",
            "symlinked folder": "sub/secret.png", "etc": "/etc/hostname", "inside then out": "x/../../../secret.png"}


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlink", "symlinked folder", "etc", "inside then out"])
def test_figure_leaving_the_study_folder_is_refused(tmp_path, capsys, case):
    entry = _escape_cases(tmp_path)[case]
    folder = _study(tmp_path, {"study": "forgrad", "title": "F",
                               "figures": [{"file": "grid.png"}, {"file": "grid.png"}, {"file": entry}]})
    code, line = _report(capsys, folder)
    assert code == 2
    assert line == (f"freqlens: error: {folder / 'results.json'}: figures[2].file {entry!r} "
                    "leaves the study folder")
    assert not (folder.parent / "report.html").exists()


def test_refused_report_embeds_nothing_from_outside(tmp_path):
    """The library call refuses too, and no report (with the secret in it) is left behind."""
    folder = _study(tmp_path, {"title": "F", "figures": [{"file": "../../secret.png"}]})
    (tmp_path / "secret.png").write_bytes(SECRET)
    with pytest.raises(ReportError, match="leaves the study folder"):
        write_report(folder.parent)
    assert not (folder.parent / "report.html").exists()


@pytest.mark.parametrize("make", ["text", "directory", "truncated magic"])
def test_figure_that_is_not_a_png_is_refused(tmp_path, capsys, make):
    folder = _study(tmp_path, {"title": "F", "figures": [{"file": "fake.png", "caption": "c"}]})
    if make == "text":
        (folder / "fake.png").write_text("hostname-like text, not an image\n")
    elif make == "directory":
        (folder / "fake.png").mkdir()
    else:
        (folder / "fake.png").write_bytes(b"\x89PNG\r\n")  # six of the eight magic bytes
    code, line = _report(capsys, folder)
    assert code == 2
    assert line == f"freqlens: error: {folder / 'results.json'}: figures[0].file 'fake.png' is not a PNG file"


def test_results_json_symlinked_out_of_its_folder_is_refused(tmp_path, capsys):
    (tmp_path / "elsewhere.json").write_text(json.dumps({"title": "not a study of this folder"}))
    folder = tmp_path / "report" / "forgrad"
    folder.mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere.json", folder / "results.json")
    code, line = _report(capsys, folder)
    assert code == 2 and line == f"freqlens: error: {folder / 'results.json'} leaves its study folder"


def test_study_folder_symlinked_out_of_the_report_folder_is_refused(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "results.json").write_text(json.dumps({"title": "somebody else's folder"}))
    report = tmp_path / "report"
    report.mkdir()
    os.symlink(outside, report / "forgrad")
    code, line = _report(capsys, report / "forgrad")
    assert code == 2 and "leaves the report folder" in line


def test_figures_inside_the_folder_are_embedded(tmp_path):
    """Legitimate layouts keep working: a figure in a sub-folder, a symlink that stays inside, a
    missing figure (marked, as before)."""
    folder = _study(tmp_path, {"title": "F", "figures": [
        {"file": "figs/a.png", "caption": "sub"}, {"file": "alias.png", "caption": "link"},
        {"file": "figs/../grid.png", "caption": "dots inside"}, {"file": "gone.png", "caption": "missing"}]})
    sub = _png(folder / "figs" / "a.png")
    os.symlink(folder / "grid.png", folder / "alias.png")
    page = write_report(folder.parent).read_text()
    embedded = [base64.b64decode(part.split("'")[0]) for part in page.split("data:image/png;base64,")[1:]]
    assert embedded == [sub, (folder / "grid.png").read_bytes(), (folder / "grid.png").read_bytes()]
    assert "missing figure gone.png" in page


MALFORMED = {
    "top level a list": ([{"title": "x"}], "the top level must be an object, got a list"),
    "top level a string": ("results", 'the top level must be an object, got "results"'),
    "title a number": ({"title": 42}, "title must be a string, got 42"),
    "study a list": ({"title": "t", "study": ["x"]}, "study must be a string, got a list"),
    "description a number": ({"title": "t", "description": 5}, "description must be a string, got 5"),
    "command an object": ({"title": "t", "command": {"a": 1}}, "command must be a string, got an object"),
    "summary a list": ({"title": "t", "summary": [1, 2]}, "summary must be an object, got a list"),
    "figures a string": ({"title": "t", "figures": "grid.png"}, 'figures must be a list, got "grid.png"'),
    "figure a string": ({"title": "t", "figures": ["grid.png"]}, 'figures[0] must be an object, got "grid.png"'),
    "figure without file": ({"title": "t", "figures": [{"file": "grid.png"}, {"caption": "c"}]},
                            "figures[1].file is missing"),
    "figure file a number": ({"title": "t", "figures": [{"file": 3}]}, "figures[0].file must be a non-empty string"),
    "figure file empty": ({"title": "t", "figures": [{"file": ""}]}, "figures[0].file must be a non-empty string"),
    "caption a number": ({"title": "t", "figures": [{"file": "grid.png", "caption": 1}]},
                         "figures[0].caption must be a string, got 1"),
    "table without columns": ({"title": "t", "tables": [{"title": "T", "rows": [[1]]}]},
                              "tables[0].columns is missing"),
    "table without rows": ({"title": "t", "tables": [{"columns": ["a"]}]}, "tables[0].rows is missing"),
    "rows not a list": ({"title": "t", "tables": [{"columns": ["a"], "rows": 3}]}, "tables[0].rows must be a list"),
    "a row not a list": ({"title": "t", "tables": [{"columns": ["a"], "rows": [[1], 2]}]},
                         "tables[0].rows[1] must be a list, got 2"),
    "table title a number": ({"title": "t", "tables": [{"title": 7, "columns": [], "rows": []}]},
                             "tables[0].title must be a string, got 7"),
    "tables an object": ({"title": "t", "tables": {"columns": []}}, "tables must be a list, got an object"),
    "claims a string": ({"title": "t", "claims": "holds"}, 'claims must be a list, got "holds"'),
    "claims a number": ({"title": "t", "claims": 5}, "claims must be a list, got 5"),
    "claim a list": ({"title": "t", "claims": [{"claim": "c"}, ["c", True]]}, "claims[1] must be an object"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_results_give_one_line_naming_file_and_key(tmp_path, capsys, case):
    results, message = MALFORMED[case]
    folder = _study(tmp_path, results)
    code, line = _report(capsys, folder)
    assert code == 2
    assert line.startswith(f"freqlens: error: {folder / 'results.json'}: {message}"), line
    assert not (folder.parent / "report.html").exists()


def test_a_malformed_study_stops_the_report_before_any_other_is_rendered(tmp_path, capsys):
    good = tmp_path / "report" / "a-good"
    _png(good / "grid.png")
    (good / "results.json").write_text(json.dumps({"title": "Good", "figures": [{"file": "grid.png"}]}))
    bad = tmp_path / "report" / "b-bad"
    bad.mkdir()
    (bad / "results.json").write_text(json.dumps({"title": "Bad", "tables": [{"rows": []}]}))
    assert main(["report", str(tmp_path / "report")]) == 2
    assert "b-bad/results.json: tables[0].columns is missing" in one_error_line(capsys)
    assert not (tmp_path / "report" / "report.html").exists()
