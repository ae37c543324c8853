"""One progress convention: ``--quiet`` on every command (bars and informational lines off, stdout and
errors unchanged); ``study --no-progress`` kept as a hidden alias."""

from __future__ import annotations

import argparse
import re
import warnings

import pytest

from freqlens.cli import build_parser, main
from freqlens.commands._common import QUIET_HELP

BAR = re.compile(r"\d+%\|")  # a tqdm bar: "  0%|" ... "100%|"


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every runnable (leaf) command of the parser by its name (``zoo build``)."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, f"{prefix}{name} ") or {f"{prefix}{name}": sub})
    return found


COMMANDS = _commands(build_parser())


def test_every_command_is_checked():
    expected = {"demo", "train", "explain", "evaluate", "attack", "analyze", "study", "report", "zoo build"}
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_takes_quiet_with_the_same_help(name):
    actions = {flag: action for action in COMMANDS[name]._actions for flag in action.option_strings}
    assert "--quiet" in actions, f"freqlens {name} has no --quiet"
    assert actions["--quiet"].dest == "quiet" and actions["--quiet"].default is False
    assert actions["--quiet"].help == QUIET_HELP


@pytest.mark.parametrize("argv", [
    ["demo"], ["train", "--dataset", "demo", "--model", "lenet", "--out", "o"],
    ["explain", "--dataset", "demo", "--method", "saliency", "--out", "o"],
    ["evaluate", "--dataset", "demo", "--out", "o"], ["attack", "--dataset", "demo", "--attack", "fgsm", "--out", "o"],
    ["analyze", "footprints", "--dataset", "demo", "--out", "o"], ["study", "forgrad", "--out", "o"], ["report", "o"],
    ["zoo", "build", "x", "--out", "o"], ["zoo", "list"],
], ids=lambda argv: " ".join(argv[:2]))
def test_quiet_parses(argv):
    parser = build_parser()
    assert parser.parse_args([*argv, "--quiet"]).quiet is True
    assert parser.parse_args(argv).quiet is False


def test_study_no_progress_is_a_hidden_alias_of_quiet(monkeypatch, tmp_path):
    parser = build_parser()
    assert parser.parse_args(["study", "forgrad", "--no-progress", "--out", "o"]).quiet is True
    study_help = COMMANDS["study"].format_help()
    assert "--quiet" in study_help and "--no-progress" not in study_help
    seen = []
    monkeypatch.setattr("freqlens.studies.registry.run_study",
                        lambda name, out, scale, **kwargs: seen.append(kwargs["progress"]) or out / name)
    monkeypatch.setattr("freqlens.report.write_report", lambda out, **kwargs: out / "report.html")
    for flags in ([], ["--quiet"], ["--no-progress"]):
        assert main(["study", "noise-tunnel", *flags, "--out", str(tmp_path)]) == 0
    assert seen == [True, False, False]


def test_zoo_build_passes_quiet_on_once(capsys, tmp_path):
    name = "lenet-cifar10-standard"
    assert main(["zoo", "build", name, "--out", str(tmp_path), "--dry-run", "--quiet"]) == 0
    assert capsys.readouterr().out.split().count("--quiet") == 1


def test_explain_shows_bars_on_stderr_unless_quiet(tmp_path, capsys):
    argv = ["explain", "--checkpoint", "zoo:lenet-cifar10-standard", "--dataset", "demo", "--method", "saliency",
            "--n-images", "2", "--forgrad", "auto", "--calibration", "2", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "loud")]) == 0
    loud = capsys.readouterr()
    assert BAR.search(loud.err) and "explain" in loud.err and "search_sigma" in loud.err  # units and σ* search
    assert not BAR.search(loud.out) and loud.out.startswith("explained 2 images")  # bars never on stdout
    assert main([*argv, "--quiet", "--out", str(tmp_path / "quiet")]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == loud.out.replace("loud", "quiet")


def test_quiet_keeps_warnings_and_errors(tmp_path, capsys, monkeypatch):
    argv = ["explain", "--checkpoint", "zoo:lenet-cifar10-standard", "--dataset", "demo", "--method", "nope",
            "--n-images", "2", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("freqlens: error:")

    def warns(args):
        warnings.warn("careful", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr("freqlens.commands.zoo._cmd_list", warns)
    assert main(["zoo", "list", "--quiet"]) == 0
    assert capsys.readouterr().err == "freqlens: warning: careful\n"
