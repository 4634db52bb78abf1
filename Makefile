# finslerlib developer entry points. `make test` and `make demo` work from a clean clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first (CPU build from the local wheel cache on the dev machines) when the
# virtual environment has none; override e.g. `make test TORCH_SPEC="torch==2.5.1"`.
TORCH_SPEC ?= torch==2.13.0
HYPOTHESIS_PROFILE ?= ci
PYTEST_ARGS ?=
# pytest-xdist workers: one per core (the tests are single-threaded, see tests/conftest.py);
# `make test PYTEST_WORKERS=0` runs in one process
PYTEST_WORKERS ?= auto
# e.g. `make demo DEMO_ARGS="--epochs 5 --heads linear funk"`
DEMO_ARGS ?=

.PHONY: venv install test typecheck lint bench docs docs-serve docs-check demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# numpy is installed with (or before) torch: torch's wheel does not require numpy, and importing a
# torch without it prints "Failed to initialize NumPy" (the version check below imports torch).
venv: $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)" numpy
	@$(PY) -c "import numpy" 2>/dev/null || $(PY) -m pip install -q numpy

# The examples extra too: the test suite runs every example's --smoke mode (tests/project/test_examples.py).
# The installed torch is pinned as a constraint, so no extra (pytorch-metric-learning, ...) can make
# pip replace it (it fails instead of downloading another build).
TORCH_PIN := $(VENV)/torch-constraint.txt
# Installed once, then again only when pyproject.toml changes (`make install` forces it); the
# compiled CPU kernels are built then too (scripts/build_kernels.py; else on first use).
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml | $(PY)
	@$(MAKE) --no-print-directory venv
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(TORCH_PIN)
	$(PY) -m pip install -q -c $(TORCH_PIN) -e ".[test,examples]"
	$(PY) scripts/build_kernels.py
	@touch $(STAMP)

install:
	@rm -f $(STAMP)
	@$(MAKE) --no-print-directory $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# mypy --strict on the typed subset listed in pyproject.toml ([tool.mypy] files)
typecheck: $(STAMP)
	$(PY) -m mypy

# The main job on bundled data (README): CNN on scikit-learn's digits with three heads, plots and
# table.md in outputs/digits_demo/ (`python scripts/readme_demo_table.py` copies the table to README.md).
demo: $(STAMP)
	$(PY) examples/digits_demo.py $(DEMO_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# Docs: `make docs` builds site/ with `mkdocs build --strict` (KaTeX fetched with npm, figures drawn
# with matplotlib); `make docs-check` then renders pages in headless Chromium (apt-get install chromium).
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -c $(TORCH_PIN) -e ".[test,docs]"
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) scripts/build_docs.py

# live-reloading preview at http://127.0.0.1:8000 (KaTeX and figures prepared by `make docs` first)
docs-serve: docs
	$(PY) -m mkdocs serve

docs-check: docs
	$(PY) scripts/check_docs_render.py

clean:
	rm -rf $(VENV) site outputs .pytest_cache .hypothesis docs/assets/katex docs/assets/figures
