# trainboard. `make` lists the targets.
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup:  ## install the app (virtualenv, CPU torch unless TRAINBOARD_TORCH says otherwise, npm packages)
	@scripts/setup.sh

run: setup  ## set up, then serve the page and API on http://127.0.0.1:8000 with one worker
	$(VENV)/bin/trainboard serve

test:  ## set up for tests (adds chromium), lint, then run the whole test suite
	@scripts/setup.sh --test
	@$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint:  ## ruff check and format check; Biome (format and lint) for the page in frontend/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd frontend && npx --no-install biome check .

bench:  ## speed scripts: loop vs plain loop, per-layer norms, store, page, queue latency
	@scripts/setup.sh --test
	$(PY) bench/loop_vs_plain.py
	$(PY) bench/layer_norms.py
	$(PY) bench/sweep.py
	$(PY) bench/sweep_page.py
	$(PY) bench/store.py
	$(PY) bench/page.py
	$(PY) bench/queue_latency.py
	$(PY) bench/startup.py
	$(PY) bench/client.py
	$(PY) bench/predict.py

.PHONY: help setup run test lint bench
