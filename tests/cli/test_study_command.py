"""``freqlens study``: runs the noise-tunnel study at a tiny scale and writes report.html; flags and errors."""

from __future__ import annotations

import html
import json

import pytest

from freqlens.cli import main

TINY = ["--set", "epochs=1", "--set", "n_train=500", "--set", "dataset=demo-mnist", "--set", "zoo="]


def test_study_writes_results_and_report(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("n_images = 3\n")
    out = tmp_path / "out"
    code = main(["study", "noise-tunnel", "--config", str(config), *TINY, "--set", "n_samples=4",
                 "--set", "ig_steps=8", "--cache", str(tmp_path / "cache"), "--no-progress", "--out", str(out)])
    assert code == 0
    results = json.loads((out / "noise-tunnel" / "results.json").read_text())
    assert results["config"]["n_images"] == 3  # from the TOML file
    assert results["config"]["epochs"] == 1  # from --set
    report = (out / "report.html").read_text()
    assert html.escape(results["title"]) in report
    assert "noise-tunnel" in report
    assert list((tmp_path / "cache").glob("*/best.pt"))


@pytest.mark.parametrize("argv, match", [
    (["--set", "colour=red"], "unknown config key"),
    (["--set", "n_images=0"], "n_images must be >= 1"),
])
def test_bad_settings_exit_2_with_one_line(tmp_path, capsys, argv, match):
    code = main(["study", "noise-tunnel", *argv, "--no-progress", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report.html").exists()


def test_unknown_study_is_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "no-such-study", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_help_lists_every_study(capsys):
    from freqlens.studies.registry import STUDIES

    with pytest.raises(SystemExit):
        main(["study", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in STUDIES)
