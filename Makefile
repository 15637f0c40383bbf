# Two commands do all the set-up on a fresh machine:
#   make serve   installs what the service needs and starts it on embedded defaults
#   make test    installs what the tests need and runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: serve test lint bench quality install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test,eval,scale]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

serve: install
	$(BIN)/facefuse serve

lint: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# The black-box API tests run a second time on a server in scaled mode (PostgreSQL + S3,
# docs/deploy.md); the store tests run on both backends within the first run.
SCALED_TESTS := tests/test_api.py tests/test_templates_api.py tests/test_reliability.py tests/test_end_to_end.py

test: install-test lint
	$(BIN)/python -m pytest
	FACEFUSE_TEST_STORAGE=scaled $(BIN)/python -m pytest $(SCALED_TESTS)

quality: install-test
	$(BIN)/python benchmarks/quality.py

bench: install-test
	$(BIN)/python benchmarks/perf.py --faces-dir ../shared/faces

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
