# Every target that runs project code first builds the virtual environment, so
# `make demo` and `make test` work on a fresh clone with nothing else done.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test check format lint types pcaps clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: $(PYTHON) is older than Python 3.11; run 'make clean' and" \
	       "then 'make PYTHON=python3.11 ...' with a newer interpreter" >&2; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/detector scan --format table pcaps/ || [ $$? -eq 1 ]

test: $(STAMP)
	$(PY) -m pytest

format: $(STAMP)
	$(VENV)/bin/ruff format detector tests

lint: $(STAMP)
	$(VENV)/bin/ruff check detector tests
	$(VENV)/bin/ruff format --check detector tests

types: $(STAMP)
	$(VENV)/bin/mypy

check: lint types test

# Rewrites the bundled sample captures; the output is byte-for-byte the same on
# every run, so a diff after this target means the generator changed.
pcaps: $(STAMP)
	$(PY) -m detector.trafficgen pcaps

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
