# freqlens — the two commands of the README, and a few more.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= demo-out

.PHONY: demo test bootstrap lint bench clean e2e docs

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap        ## the main job on the embedded sample -> $(OUT)/report.html
	$(VENV)/bin/freqlens demo --out $(OUT)

test:                  ## the whole test suite (with the peers extra: Captum / Quantus cross-checks)
	@FREQLENS_EXTRAS=$${FREQLENS_EXTRAS:-dev,peers} bash scripts/bootstrap.sh
	$(PY) -m pytest -q

docs:                  ## the API reference, built offline into site/ (mkdocs build --strict; open site/index.html)
	@FREQLENS_EXTRAS=$${FREQLENS_EXTRAS:-dev} bash scripts/bootstrap.sh
	$(VENV)/bin/mkdocs build --strict --site-dir site

lint: bootstrap
	$(VENV)/bin/ruff check src tests benchmarks

bench: bootstrap       ## benchmarks (not tests): prints ratios, writes benchmarks/results/*.json
	$(PY) benchmarks/run.py

E2E_OUT ?= e2e-out
CHROMIUM_BINARIES := chromium chromium-browser google-chrome google-chrome-stable

e2e:                   ## browser check: report.html in headless Chromium (images decode, no console error) + screenshot
	@if [ -n "$$FREQLENS_CHROMIUM" ]; then \
		echo "[e2e] using FREQLENS_CHROMIUM=$$FREQLENS_CHROMIUM"; \
	elif found=$$(command -v $(CHROMIUM_BINARIES) 2>/dev/null | head -n1) && [ -n "$$found" ]; then \
		echo "[e2e] using $$found"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "[e2e] no Chromium found: installing Debian's chromium ($${sudo:+$$sudo }apt-get install -y chromium)"; \
		$$sudo apt-get install -y chromium || { $$sudo apt-get update && $$sudo apt-get install -y chromium; } || exit 1; \
	else \
		echo "[e2e] no Chromium found and no apt-get to install it: install Chromium or Chrome, or set" \
			"FREQLENS_CHROMIUM=/path/to/chrome, then run 'make e2e' again" >&2; \
		exit 1; \
	fi
	@FREQLENS_EXTRAS=$${FREQLENS_EXTRAS:-dev,peers} bash scripts/bootstrap.sh
	FREQLENS_E2E_REQUIRE=1 FREQLENS_E2E_OUT=$(abspath $(E2E_OUT)) $(PY) -m pytest -m e2e tests/e2e -q -rs
	@echo "[e2e] screenshot of the report: $(abspath $(E2E_OUT))/report.png"

clean:
	rm -rf $(VENV) $(OUT) $(E2E_OUT) .pytest_cache site
