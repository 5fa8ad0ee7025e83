# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SALON := $(VENV)/bin/salon
STAMP := $(VENV)/.installed-v2
# Ray and Milvus are an extra the tests install; `make run` never needs them.
SCALE_STAMP := $(VENV)/.installed-scale-v1

.PHONY: run test setup scale model index lint docs bench-deps bench-quality bench-txtai bench-memory bench-reader bench-small bench-build bench-entities bench-writes bench-load bench-encode bench-scale bench-ann bench-milvus bench-ray plots chromium clean

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

index: model
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
	$(VENV)/bin/pytest -q -ra --durations=12

# Benchmarks: each prints its table and writes its JSON into docs/bench/ (the figures
# docs/quality.md, docs/performance.md, docs/scale-out.md and docs/reliability.md cite). They need
# ../shared/eval beside the checkout; most take minutes to hours on 2 cores.

# The bench extra: txtai (the reference system) and matplotlib (plots).
bench-deps: setup
	$(PY) -m pip install -q -e '.[dev,bench]'

# Retrieval and answers against BM25 alone, dense alone and txtai: PIAF dev (cache off, so build
# times compare with txtai's) and an OrangeSum subset of 2,400 articles.
bench-quality: bench-deps
	$(PY) bench/quality.py ../shared/eval/piaf-dev --no-cache --out docs/bench/retrieval-piaf.json
	$(PY) bench/quality.py ../shared/eval/orangesum --max-docs 2400 --out docs/bench/retrieval-orangesum.json

# The PIAF half of bench-quality alone: Salon beside txtai on the same passages and questions.
bench-txtai: bench-deps
	$(PY) bench/quality.py ../shared/eval/piaf-dev --no-cache --out docs/bench/retrieval-piaf.json

# The live archive: write → searchable, write throughput, search beside a live segment, rankings
# after writes and a merge against a build from scratch (bench/writes.py).
bench-writes: bench-deps
	$(PY) bench/writes.py ../shared/eval/orangesum --size 20000 --live 1000 --json docs/bench/writes-20k.json

# The server's fixed cost as a new user meets it (memory, start to the first answer) beside txtai,
# and what the answer step adds to a PIAF question.
bench-memory: bench-deps
	$(PY) bench/memory.py --piaf ../shared/eval/piaf-dev --txtai --json docs/bench/server-memory.json

# The reader's figures: answers on the PIAF test split (its French questions, then the same ones
# reworded in English, Spanish and German), and its cost and worth per configuration (runtime,
# windows, gate) on 400 test questions.
bench-reader: setup
	$(SALON) eval ../shared/eval/piaf-dev --mode hybrid --split test --json > docs/bench/answers-piaf-test.json
	for l in en es de; do \
	  $(SALON) eval ../shared/eval/piaf-dev --mode hybrid --split test --questions bench/data/piaf-$$l-questions.jsonl \
	    --json > docs/bench/answers-piaf-test-$$l.json || exit 1; done
	$(PY) bench/reader.py ../shared/eval/piaf-dev --limit 400 --out docs/bench/reader-configurations.json

# The answer confidence on small archives: PIAF test questions over their gold article plus k = 1,
# 10 and 100 others, three draws each, and the full index (answered, precision, span F1, ECE).
bench-small: bench-deps
	$(PY) bench/small_corpus.py ../shared/eval/piaf-dev --split test --draws 3 \
	  --json docs/bench/small-corpora-test.json --plot docs/reliability-small-corpora.png

# Index builds with the embedding cache off (time, tokens/s, peak memory): PIAF dev, then the
# 2,400-article OrangeSum subset of bench-quality.
bench-build: setup
	$(PY) bench/build.py ../shared/eval/piaf-dev --json docs/bench/build-piaf.json
	$(PY) bench/build.py ../shared/eval/orangesum --max-docs 2400 --json docs/bench/build-orangesum.json

# Entities: PIAF dev built with the embedding cache off, entities off and on side by side (build
# time, store bytes per passage), and how often a gold answer that is a name is among its passage's
# entities; then the person names of the OrangeSum headlines found in their articles (NER only).
bench-entities: setup
	$(PY) bench/entities.py ../shared/eval/piaf-dev --json docs/bench/entities-piaf.json
	$(PY) bench/entities.py ../shared/eval/orangesum --headlines --json docs/bench/entities-orangesum.json
	$(PY) bench/entities.py ../shared/eval/orangesum --repeat 1 --json docs/bench/entities-orangesum-build.json

# HTTP load on `salon serve` at 1, 4 and 16 clients, with a rebuild and hot reload mid-run.
bench-load: setup
	$(PY) bench/load.py --requests 10000 --concurrency 1,4,16 --reload-mid --json docs/bench/http-load.json

# Embedding throughput against the machine's matmul ceiling, and single-query encoding per runtime.
bench-encode: setup
	$(PY) bench/encode.py ../shared/eval/orangesum --json docs/bench/encoding-throughput.json

# Search latency against corpus size (1k, 20k, all 282,996 OrangeSum paragraphs), then question
# latency at 283k with PIAF's articles indexed beside them. The first run embeds every OrangeSum
# chunk into the embedding cache (hours on 2 cores; cached afterwards); sentence vectors missing
# from the cache at full size are random stand-ins (latency only, reported).
bench-scale: setup
	$(PY) bench/scale.py ../shared/eval/orangesum --sizes 1000,20000,all --cached-only all --json docs/bench/search-latency-vs-size.json
	$(PY) bench/scale.py ../shared/eval/orangesum --sizes all --cached-only all --with-piaf --no-recall --no-http --json docs/bench/question-latency-283k.json

# Exact against approximate dense search, on the 283k index bench-scale built and on 1M vectors.
bench-ann: setup
	$(PY) bench/ann.py --real var/bench/scale-all --json docs/bench/ann-283k.json
	$(PY) bench/ann.py --synthetic 1000000 --like var/bench/scale-all --quick --json docs/bench/ann-1m.json

# The Milvus store (milvus-lite) against the local store: PIAF figures through each, then search
# latency at 20k OrangeSum paragraphs.
bench-milvus: scale
	$(SALON) eval ../shared/eval/piaf-dev --mode hybrid --store local --json > docs/bench/store-local-piaf.json
	$(SALON) eval ../shared/eval/piaf-dev --mode hybrid --store milvus --json > docs/bench/store-milvus-piaf.json
	$(PY) bench/milvus_store.py ../shared/eval/orangesum --size 20000 --cached-only --json docs/bench/milvus-latency-20k.json

# A build on a two-node Ray cluster against the same build in process; the cluster runs in a
# network namespace of its own (root needed).
bench-ray: scale
	$(PY) bench/ray_build.py ../shared/eval/piaf-dev --passages 400 --json docs/bench/ray-build-piaf-400.json

# docs/latency-vs-size.png and docs/ann-recall-latency.png from bench-scale's and bench-ann's JSON.
plots: bench-deps
	$(PY) bench/plots.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
