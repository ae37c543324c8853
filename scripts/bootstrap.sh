#!/usr/bin/env bash
# Create (once) the local virtual environment .venv and install freqlens into it.
#   FREQLENS_TORCH   pip requirement used when torch is absent (default: torch==2.13.0, the CPU build;
#                    GPU users: FREQLENS_TORCH="torch" or a CUDA wheel spec)
#   FREQLENS_EXTRAS  extras to install (default: dev; `make test` uses dev,peers for the Captum/Quantus
#                    cross-checks)
#   PYTHON           interpreter used to create the venv (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${FREQLENS_TORCH:-torch==2.13.0}"
EXTRAS="${FREQLENS_EXTRAS:-dev}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating $VENV with $("$PY" --version 2>&1)" >&2
    "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    echo "[bootstrap] installing $TORCH_SPEC" >&2
    "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
fi
stamp="$VENV/.freqlens-installed-${EXTRAS//,/-}"
want="$(cksum < pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[bootstrap] installing freqlens[$EXTRAS] (editable)" >&2
    if "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"; then
        echo "$want" > "$stamp"
    elif [ "$EXTRAS" != "dev" ]; then
        # the optional peers (Captum, Quantus) only enable cross-checks, which skip cleanly without them
        echo "[bootstrap] WARNING: installing freqlens[$EXTRAS] failed; falling back to freqlens[dev]" >&2
        "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
    else
        exit 1
    fi
fi
