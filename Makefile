# Qwen3-VL Cookbook. `make help` lists the targets.
# Everything runs in a local virtual environment (.venv) that `make setup` creates on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
SMOKE_ENV := COOKBOOK_MODEL=tiny HF_HUB_OFFLINE=1
PORT   ?= 8000
LAB_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup browser lab test unit notebooks lab-test smoke serve gpu-check lint strip clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	@$(MAKE) --no-print-directory browser
	@touch $@

setup: $(STAMP) ## create .venv and install the cookbook with its dependencies (quick when nothing changed)

# 05 and 06 drive Chromium: Playwright's own build where it can be downloaded, else the system's
# package (Debian's `chromium`, installed here when run as root), else a message saying what to do.
browser: ## make sure a Chromium is there for Playwright (05, 06)
	@$(PY) -m cookbook.browser 2>/dev/null \
	|| $(VENV)/bin/playwright install chromium \
	|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	     && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }; } \
	|| true
	@$(PY) -m cookbook.browser

lab: $(STAMP) ## open JupyterLab on notebooks/ (LAB_ARGS="--no-browser --port 8888" to pass options)
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: unit notebooks lab-test ## unit tests, every notebook headless, then every notebook in JupyterLab in Chromium (smoke mode)

unit: $(STAMP) ## unit tests only
	$(SMOKE_ENV) $(PY) -m pytest -q --ignore=tests/lab

notebooks: $(STAMP) ## every notebook headless with nbmake (smoke mode)
	$(SMOKE_ENV) $(PY) -m pytest -q --nbmake --nbmake-timeout=900 --durations=0 $(NOTEBOOKS)

lab-test: $(STAMP) ## the learner's path: JupyterLab as `make lab` starts it, each notebook run in Chromium
	$(SMOKE_ENV) $(PY) -m pytest -q --durations=0 tests/lab

smoke: $(STAMP) ## run every notebook in smoke mode and keep executed copies under build/
	@mkdir -p build
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb"; \
	  $(SMOKE_ENV) $(VENV)/bin/jupyter nbconvert --to notebook --execute \
	    --ExecutePreprocessor.timeout=900 --output-dir build "$$nb" || exit 1; \
	done

serve: $(STAMP) ## serve this run's model on 127.0.0.1 (PORT=8000) (vLLM on a GPU, else transformers serve)
	$(PY) -m cookbook.serving --port $(PORT)

gpu-check: $(STAMP) ## on a CUDA GPU: load, chat, memory and FP8 checks with the tiny model (says why and exits 0 without one)
	$(PY) scripts/gpu_check.py

lint: $(STAMP) ## ruff over the module, tests and notebooks; notebooks must be stored without outputs
	$(VENV)/bin/ruff check cookbook tests notebooks
	$(PY) -m pytest -q tests/test_notebooks.py

strip: $(STAMP) ## remove outputs, execution counts and extra metadata from the notebooks
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace --log-level=WARN \
	  --ClearMetadataPreprocessor.enabled=True \
	  --ClearMetadataPreprocessor.preserve_nb_metadata_mask=kernelspec \
	  --ClearMetadataPreprocessor.preserve_nb_metadata_mask=language_info $(NOTEBOOKS)

clean: ## remove build outputs and caches (keeps .venv and downloaded weights)
	rm -rf build .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
