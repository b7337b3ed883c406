# Two commands do everything on a fresh machine:
#   make demo   create .venv, install, classify the bundled sample (two-phase), write the report
#   make test   create .venv, install, run the whole test suite
# Both are safe to run again (the install step reruns only when the package metadata changes).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.wafertk-installed
DEMO_OUT ?= demo-out
PYTEST_ARGS ?=

.PHONY: demo test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Strict editable install: a tree of links under build/ is put on sys.path, so the package is
# found as a regular package (a folder named wafertk in the current directory, e.g. a clone,
# cannot shadow it) and edits are live. New or removed files need relinking: LINKS is named
# after the list of files, so the link step reruns only when that list changes.
EDITABLE := --config-settings editable_mode=strict
FILES_ID := $(shell find wafertk cli configs -type f ! -name '*.pyc' 2>/dev/null | sort | cksum | cut -d' ' -f1)
LINKS  := $(VENV)/.wafertk-links-$(FILES_ID)

$(STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -e ".[test,dask]" $(EDITABLE)
	@touch $(STAMP)

$(LINKS): $(STAMP)
	@rm -f $(VENV)/.wafertk-links-*
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . $(EDITABLE)
	@touch $(LINKS)

install: $(LINKS)

demo: install
	$(BIN)/wafertk classify data/wafers.h5 -o $(DEMO_OUT)
	@echo "Report: $(DEMO_OUT)/report.html   Predictions: $(DEMO_OUT)/predictions.csv"

test: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check wafertk cli tests benchmarks

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info $(VENV)/.wafertk-links-*
