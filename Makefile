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

$(STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/wafertk classify data/wafers.h5 -o $(DEMO_OUT)
	@echo "Report: $(DEMO_OUT)/report.html   Predictions: $(DEMO_OUT)/predictions.csv"

test: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check wafertk cli tests benchmarks

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
