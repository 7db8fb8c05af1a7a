# recapp: `make dashboard` (the main job) and `make test` (every test) do all the set-up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8866
export RECAPP_DATA ?= $(HOME)/.cache/recapp

.PHONY: install data test bench dashboard lab clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first, so no CUDA build is pulled in by the package.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

data: install
	$(PY) -m recapp.data fetch

test: install data
	RECAPP_PROFILE=ci $(PY) -m pytest -q tests --nbval-lax notebooks/0*.ipynb

bench: install data
	$(PY) benchmarks/accuracy.py

lab: install data
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
