# The commands CI and developers run.  `make test` works on a fresh Debian machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: test test-compiled check lint format typecheck deps clean bench

test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

deps: $(VENV)/.installed
	./scripts/install-system-deps

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks examples scripts hatch_build.py
	$(VENV)/bin/ruff format --check src tests benchmarks examples scripts hatch_build.py

format: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests benchmarks examples scripts hatch_build.py
	$(VENV)/bin/ruff check --fix src tests benchmarks examples scripts hatch_build.py

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

check: lint typecheck test

# The compiled build (what `pip install .` installs) must behave as the pure-Python one:
# run the server's tests on it.
test-compiled: deps
	rm -rf build/compiled && PATH=$(CURDIR)/$(VENV)/bin:$$PATH scripts/build-compiled build/compiled
	python3 -m venv build/compiled/venv
	build/compiled/venv/bin/pip install -q "$$(ls build/compiled/geartrain-*.whl)[test]"
	build/compiled/venv/bin/python -m pytest -q -p no:cacheprovider tests/test_protocol.py tests/server tests/e2e \
		tests/store/test_journal.py tests/store/test_levels.py tests/store/test_group_commit.py \
		tests/console/test_api.py tests/console/test_metrics.py

bench: deps
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
