"""Run every benchmark script of this folder (quick settings); each prints ratios and writes JSON."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != "run.py")
    failures = 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        failures += subprocess.call([sys.executable, str(script)], cwd=HERE) != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
