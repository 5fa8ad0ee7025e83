# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SALON := $(VENV)/bin/salon
STAMP := $(VENV)/.installed-v1

.PHONY: run test setup model index lint bench-deps bench-quality bench-build bench-load chromium clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: unpinned, pip would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

model: setup
	$(SALON) model

index: setup
	$(SALON) index --if-missing

run: index
	$(SALON) serve

# Browser tests drive Debian's chromium; Playwright never downloads a browser.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }
	@command -v chromium >/dev/null || { echo "chromium could not be installed"; exit 1; }

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup chromium lint
	$(SALON) model >/dev/null
	$(VENV)/bin/pytest -q -ra

# Benchmarks print tables; they need ../shared/eval (see docs/quality.md, docs/performance.md).
bench-deps: setup
	$(PY) -m pip install -q -e '.[dev,bench]'

bench-quality: bench-deps
	$(PY) bench/quality.py ../shared/eval/piaf-dev
	$(PY) bench/quality.py ../shared/eval/orangesum --max-docs 2400

bench-build: setup
	$(PY) bench/build.py ../shared/eval/piaf-dev

bench-load: setup
	$(PY) bench/load.py --requests 10000 --concurrency 1,4,16 --reload-mid

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
