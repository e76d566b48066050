# Two entry points for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench microbench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/pinewood run

test: lint typecheck unit

lint: $(STAMP)
	$(PY) -m ruff check router relay bench tests
	$(PY) -m ruff format --check router relay bench tests
	$(VENV)/bin/lint-imports
	@if command -v gofmt >/dev/null; then \
		out="$$(gofmt -l tests/interop/gopeer)"; \
		if [ -n "$$out" ]; then echo "gofmt: not formatted: $$out"; exit 1; fi; \
	fi

typecheck: $(STAMP)
	$(PY) -m mypy router relay bench tests

# Benchmarks run once each as tests (no timing) so they cannot rot.
unit: $(STAMP)
	$(PY) -m pytest --benchmark-disable -q

# The full report: simulator, throughput, sessions and relay into bench/results/REPORT.md.
# One section alone: make bench BENCH_ARGS="--only sim"; reduced set: BENCH_ARGS=--quick.
bench: $(STAMP)
	$(PY) -m bench report --progress $(BENCH_ARGS)

microbench: $(STAMP)
	$(PY) -m pytest bench --benchmark-only --benchmark-columns=min,median,mean,ops,rounds

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
