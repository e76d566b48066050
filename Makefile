# Entry points for a newcomer: `make run`, `make check` (quick) and `make test` (everything).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUILD  := $(VENV)/.build
# What setup.py compiles is under these (a superset: any change rebuilds).
HOT_PATH := setup.py $(wildcard router/wire/*.py router/routing/*.py) router/links/queues.py
# The core tests also run on the sources alone, from a copy without the compiled modules.
PURE   := build/pure

# Bytecode caches on: every daemon a test starts would otherwise compile its
# modules from source again (a tenth of a second each, hundreds of times).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run check test test-conduit lint typecheck unit unit-pure compiled clean-compiled bench microbench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The hot path compiled with mypyc, in place beside its sources (setup.py says
# which modules).  Where no C compiler is, everything runs as pure Python.
# $(BUILD) holds which of the two this checkout has.
compiled: $(BUILD)
$(BUILD): $(STAMP) $(HOT_PATH)
	@if command -v "$${CC:-cc}" >/dev/null 2>&1; then \
		echo "compiling the hot path with mypyc"; \
		$(PY) -m pip install --quiet "setuptools>=77" wheel && \
		PINEWOOD_COMPILE=1 $(PY) -m pip install --quiet --no-build-isolation --no-deps -e . && echo compiled > $(BUILD); \
	else \
		echo "no C compiler: the hot path runs as pure Python"; $(MAKE) --no-print-directory clean-compiled; echo pure > $(BUILD); \
	fi

clean-compiled:
	find router relay -name '*.so' -delete
	rm -f ./*__mypyc*.so $(BUILD)
	rm -rf build/temp.* build/lib.*

run: $(BUILD)
	$(VENV)/bin/pinewood run

test: lint typecheck unit unit-pure

# tuwunel (a Conduit-family homeserver) federating with Synapse through the
# routers.  The suite does not build tuwunel: point PINEWOOD_TUWUNEL at a
# binary built from its source (make test skips these tests without one).
test-conduit: $(BUILD)
	PINEWOOD_REQUIRE_CONDUIT=1 $(PY) -m pytest -q tests/interop/test_conduit.py

# Lint, types and every test that starts no other process (the "process"
# marker, applied by path in tests/conftest.py).
check: lint typecheck $(BUILD)
	PINEWOOD_EXPECT_BUILD=$$(cat $(BUILD)) $(PY) -m pytest --benchmark-disable -q -n 2 --dist loadfile -m "not process"

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

# Benchmarks run once each as tests (no timing) so they cannot rot.  Most
# tests wait on processes more than they compute: they run two at a time, a
# test file to a worker; those marked serial (time bounds beside the Go
# reference, floods) run alone afterwards.
unit: $(BUILD)
	PINEWOOD_EXPECT_BUILD=$$(cat $(BUILD)) $(PY) -m pytest --benchmark-disable -q -n 2 --dist loadfile -m "not serial" --durations=20
	PINEWOOD_EXPECT_BUILD=$$(cat $(BUILD)) $(PY) -m pytest --benchmark-disable -q -m serial --durations=10

# The sans-I/O core's tests on the pure-Python sources (a copy of the tree
# without the compiled modules, beside a link to ../shared).  The two largest
# meshes (graph-250, 150-200 random nodes: a minute between them) run in the
# compiled run only; smaller meshes run the same rules here.
unit-pure: $(STAMP)
	rm -rf $(PURE) && mkdir -p $(PURE)/pinewood
	ln -s $(abspath ../shared) $(PURE)/shared
	tar --exclude='*.so' --exclude=__pycache__ -cf - pyproject.toml setup.py router relay bench tests \
		| tar -xf - -C $(PURE)/pinewood
	cd $(PURE)/pinewood && PYTHONPATH=. PINEWOOD_EXPECT_BUILD=pure $(abspath $(PY)) -m pytest \
		--benchmark-disable -q -p no:cacheprovider -n 2 --dist loadfile \
		tests/router/daemon/test_build.py tests/router/wire tests/router/routing tests/router/sim tests/router/links/test_queues.py \
		-k "not graph-250 and not large_random_graphs"

# The full report: simulator, throughput, sessions and relay into bench/results/REPORT.md.
# One section alone: make bench BENCH_ARGS="--only sim"; reduced set: BENCH_ARGS=--quick.
bench: $(STAMP)
	$(PY) -m bench report --progress $(BENCH_ARGS)

microbench: $(STAMP)
	$(PY) -m pytest bench --benchmark-only --benchmark-columns=min,median,mean,ops,rounds

clean: clean-compiled
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build
