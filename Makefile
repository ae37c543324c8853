# freqlens — the two commands of the README, and a few more.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= demo-out

.PHONY: demo test bootstrap lint bench clean

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap        ## the main job on the embedded sample -> $(OUT)/report.html
	$(VENV)/bin/freqlens demo --out $(OUT)

test:                  ## the whole test suite (with the peers extra: Captum / Quantus cross-checks)
	@FREQLENS_EXTRAS=$${FREQLENS_EXTRAS:-dev,peers} bash scripts/bootstrap.sh
	$(PY) -m pytest -q

lint: bootstrap
	$(VENV)/bin/ruff check src tests benchmarks

bench: bootstrap       ## benchmarks (not tests): prints ratios, writes benchmarks/results/*.json
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
