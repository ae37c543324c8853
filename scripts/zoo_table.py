#!/usr/bin/env python
"""Print the README's zoo table (Markdown) from ``src/freqlens/models/zoo/manifest.json``.

``tests/models/test_zoo_readme.py`` checks that the README holds exactly this table, so after
``scripts/zoo_add.py`` run this and paste its output over the table in README.md.
"""

from __future__ import annotations

from fractions import Fraction

from freqlens.models import zoo


def _eps(value: float) -> str:
    """``8/255`` for the usual pixel budgets, else the number."""
    fraction = Fraction(value).limit_denominator(255)
    return f"{fraction.numerator}/{fraction.denominator}" if abs(float(fraction) - value) < 1e-9 and \
        fraction.denominator == 255 else f"{value:g}"


def mode_text(entry: zoo.ZooEntry) -> str:
    """``standard``, ``noise modulation β=0.5 gaussian``, ``PGD-AT ε=8/255, 7 steps``, ``fast FGSM-AT ε=8/255``."""
    config = entry.mode_config
    if entry.mode == "noise-modulation":
        return f"noise modulation β={config['beta']:g} {config['noise']}"
    if entry.mode == "adversarial":
        if config.get("attack") == "PGD":
            return f"PGD-AT ε={_eps(config['eps'])}, {config['steps']} steps"
        return f"fast FGSM-AT ε={_eps(config['eps'])}"
    return entry.mode


def _percent(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def table() -> str:
    """The Markdown table, one row per manifest entry (sorted by name, as the manifest)."""
    lines = ["| name | mode | epochs | test accuracy | PGD-20 robust accuracy | sample accuracy | MB | training minutes |",
             "|---|---|---|---|---|---|---|---|"]
    for entry in zoo.entries():
        robust = _percent(entry.robust_accuracy, 1)
        if entry.robust_accuracy is not None and entry.robust_eval:
            robust += f" (ε={_eps(entry.robust_eval['eps'])})"
        minutes = "—" if entry.minutes is None else str(round(entry.minutes))
        lines.append(f"| `{entry.name}` | {mode_text(entry)} | {entry.epochs} | {_percent(entry.test_accuracy, 2)} | "
                     f"{robust} | {_percent(entry.sample_accuracy, 1)} | {entry.size_mb:.2f} | {minutes} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
