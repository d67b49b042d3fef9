# Two entry points, both from a fresh clone: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: run test test-e2e install install-test lint dag

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, on its own: the pinned CPU build (a plain resolve may pick a CUDA build).
install: $(BIN)/activate
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/activate
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	bash .ci/install-label-studio.sh
	bash .ci/install-browser.sh

run: install
	PATH=$(abspath $(BIN)):$$PATH snakemake --cores $(CORES)

# Every test but the long end-to-end ones (whole DAG runs, the browser); .ci/run runs both.
LONG := slow or browser or cluster

test: install-test
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/ruff check .
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest -m "not ($(LONG))" -p no:cacheprovider --durations=10

test-e2e: install-test
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest -m "$(LONG)" -p no:cacheprovider --durations=30

lint:
	$(BIN)/ruff check .

dag:
	PATH=$(abspath $(BIN)):$$PATH snakemake --dag | dot -Tsvg > docs/dag.svg
