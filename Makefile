# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SALON := $(VENV)/bin/salon
STAMP := $(VENV)/.installed-v2
# Ray and Milvus (issue #11) are an extra the tests install; `make run` never needs them.
SCALE_STAMP := $(VENV)/.installed-scale-v1

.PHONY: run test setup scale model index lint docs bench-deps bench-quality bench-build bench-load bench-encode bench-scale bench-ann bench-txtai bench-milvus bench-ray plots chromium clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: unpinned, pip would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

$(SCALE_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,scale]'
	touch $(SCALE_STAMP)

scale: $(SCALE_STAMP)

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
	$(VENV)/bin/lint-imports --no-cache

# docs/configuration.md is generated from the settings object (tests/test_docs.py checks it).
docs: setup
	$(VENV)/bin/cog -r docs/configuration.md

test: setup scale chromium lint
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

# Performance at scale (docs/performance.md). bench-scale embeds all 282,996 OrangeSum
# paragraphs on its first run (about 1.5 h on 2 cores with bf16; cached afterwards).
bench-encode: setup
	$(PY) bench/encode.py ../shared/eval/orangesum

bench-scale: setup
	$(PY) bench/scale.py ../shared/eval/orangesum --sizes 1000,20000,all --json docs/bench/scale.json

bench-ann: setup
	$(PY) bench/ann.py --real var/bench/scale-all --json docs/bench/ann-283k-full.json
	$(PY) bench/ann.py --synthetic 1000000 --like var/bench/scale-all --quick --json docs/bench/ann-1m.json

bench-txtai: bench-deps
	$(PY) bench/quality.py ../shared/eval/piaf-dev --no-cache

# Scale-out figures (docs/scale-out.md); bench-ray starts a two-node Ray cluster inside a network
# namespace of its own (root needed).
bench-milvus: scale
	$(PY) bench/milvus_store.py ../shared/eval/orangesum --size 20000 --cached-only --json docs/bench/milvus-20k.json

bench-ray: scale
	$(PY) bench/ray_build.py ../shared/eval/piaf-dev --passages 400 --json docs/bench/ray-build.json

plots: bench-deps
	$(PY) bench/plots.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
