# fgssl set-up: each target creates .venv (if missing), installs, and runs.
#   make demo   install, then train + test FG-SSL on the synthetic demo data (CPU; about 4 min on 2 idle cores)
#               (TORCH_INDEX=https://download.pytorch.org/whl/cpu: the CPU-only PyTorch, see TORCH below)
#   make test   install with test extras, then lint, type-check, build the documentation site
#               strictly (offline) and run the whole test suite
#   make docs   install with the docs extra, then build the documentation site into site/
#               (mkdocs build --strict: a broken link, reference or docstring fails it)
#   make floors install with test extras, then run the relevant tests at the declared floors
#               of scikit-learn and timm (scripts/check_floors.sh; not part of make test)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PyTorch pinned to the builds this project is tested with, from PyPI by default: on Linux
# that is the CUDA build (several GB of NVIDIA libraries), what a machine with a GPU needs.
# The CPU-only build (a few hundred MB) comes from PyTorch's CPU wheel index, where that
# index is reachable:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
# in a new .venv (pip keeps a torch already installed; `make clean` removes .venv). Any index
# that holds these versions and their dependencies works; fgssl's other dependencies come
# from PyPI.
TORCH := torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
TORCH_FROM := $(if $(strip $(TORCH_INDEX)),--index-url $(strip $(TORCH_INDEX)))
# The site reads the sources with griffe (nothing imported) and fetches nothing: no web fonts,
# no social cards, no inventories. NO_MKDOCS_2_WARNING: Material's banner about MkDocs 2.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

.PHONY: demo test docs floors install install-test install-docs lint benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_FROM) $(TORCH)
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_FROM) $(TORCH)
	$(BIN)/pip install --quiet -e ".[test]"

install-docs: $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_FROM) $(TORCH)
	$(BIN)/pip install --quiet -e ".[docs]"

demo: install
	$(BIN)/fgssl-train +experiment=demo

lint: install-test
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy

test: lint
	$(MKDOCS)
	$(BIN)/python -m pytest

docs: install-docs
	$(MKDOCS)

floors: install-test
	bash scripts/check_floors.sh

benchmark: install
	$(BIN)/python scripts/benchmark.py

clean:
	rm -rf outputs multirun site .venv-floors .pytest_cache .mypy_cache .ruff_cache build dist
