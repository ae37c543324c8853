"""The README's zoo table is the manifest's (scripts/zoo_table.py), so the two cannot drift apart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_readme_zoo_table_is_generated_from_the_manifest():
    script, readme = ROOT / "scripts" / "zoo_table.py", ROOT / "README.md"
    if not script.exists() or not readme.exists():
        pytest.skip("needs the repository checkout (scripts/zoo_table.py, README.md)")
    spec = importlib.util.spec_from_file_location("zoo_table", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.table()
    assert table.count("\n") >= 3
    assert table in readme.read_text(encoding="utf-8"), (
        "README.md's zoo table differs from the manifest: run `python scripts/zoo_table.py` and paste it over it")
