# recapp: `make dashboard` (the main job) and `make test` (every test) do all the set-up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8866
export RECAPP_DATA ?= $(HOME)/.cache/recapp

.PHONY: install data test bench dashboard lab clean browser screenshots spark

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first, so no CUDA build is pulled in by the package.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,spark]"
	touch $@

install: $(VENV)/.installed

data: install
	$(PY) -m recapp.data fetch

test: install data browser spark
	# Trained models go to a throw-away folder, never the user's cache.
	RECAPP_PROFILE=ci RECAPP_MODELS=$$(mktemp -d) $(PY) -m pytest -q tests --nbval-lax notebooks/0*.ipynb

bench: install data
	$(PY) benchmarks/accuracy.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/realtime.py --sequential

# Your own data: make dashboard EVENTS=path/to/events.csv [ITEMS=path/to/items.csv] [TIME_FORMAT=%d/%m/%Y]
# (paths are made absolute: the served notebook runs in notebooks/).
DATA_ENV := $(if $(EVENTS),RECAPP_EVENTS=$(abspath $(EVENTS))) $(if $(ITEMS),RECAPP_ITEMS=$(abspath $(ITEMS))) \
	$(if $(TIME_FORMAT),RECAPP_TIME_FORMAT='$(TIME_FORMAT)')

# Fetch the data, train and cache the default model (under $(RECAPP_DATA)/models), then serve the dashboard.
dashboard: install data
	$(DATA_ENV) $(PY) -m recapp.dashboard --prepare
	@echo "recapp dashboard: http://localhost:$(PORT)/  (Ctrl-C stops it)"
	$(DATA_ENV) $(VENV)/bin/voila notebooks/dashboard.ipynb --port=$(PORT) --no-browser

# The browser test drives Debian's chromium (playwright's own browser download is not used).
browser:
	@test -x /usr/bin/chromium || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# The Spark tests and notebook 06 need Java 17+ (Spark 4): Debian's openjdk-17-jre-headless when it is missing.
spark: install
	@$(PY) -c "import sys; from recapp.spark.session import java_available; sys.exit(not java_available())" || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jre-headless; }
	@java -version 2>&1 | head -n 1
	@$(PY) -c "import pyspark; print('pyspark', pyspark.__version__)"

# Refresh the README's screenshots (docs/screenshots/) from the browser test.
screenshots: install data browser
	RECAPP_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/test_browser.py

lab: install data
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
