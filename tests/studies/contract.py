"""What every study's output must satisfy (the study interface of ``freqlens.studies.registry``), checked
once here for all four study test files."""

from __future__ import annotations

import dataclasses
import operator
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RELATIONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
KEYS = ("study", "title", "description", "command", "config", "summary", "figures", "tables", "claims",
        "analysed_models")
CLAIM_KEYS = {"claim", "seed", "figure", "measured", "expected", "holds", "left", "relation", "right"}


def check_study_contract(path: Path, results: dict, study: str, config) -> None:
    """``results`` (read from ``path``) has the common keys, the config it ran with and a run time; its
    tables are rectangular; its figures are exactly the PNG files of its folder; every claim names one
    of them and ``holds`` is the comparison of its own ``left`` and ``right`` numbers."""
    for key in KEYS:
        assert key in results, key
    assert path.parent.name == study == results["study"]
    assert results["config"] == dataclasses.asdict(config)
    assert "total seconds" in results["summary"]
    for table in results["tables"]:
        assert table["rows"] and all(len(row) == len(table["columns"]) for row in table["rows"]), table["title"]
    listed = {figure["file"] for figure in results["figures"]}
    assert listed == {png.name for png in path.parent.glob("*.png")}
    for name in listed:
        assert (path.parent / name).read_bytes()[:8] == PNG_SIGNATURE, name
    assert results["analysed_models"]
    for model in results["analysed_models"]:  # where each model came from and its accuracy, for the report
        assert set(model) == {"role", "model", "test accuracy", "robust accuracy"}
        assert 0.0 <= model["test accuracy"] <= 1.0 and model["model"]
    assert results["claims"]
    for claim in results["claims"]:
        assert set(claim) >= CLAIM_KEYS, claim
        assert claim["figure"] in listed
        assert claim["holds"] is RELATIONS[claim["relation"]](claim["left"], claim["right"])
