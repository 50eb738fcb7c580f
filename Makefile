# The book's two commands: `make book` builds the HTML book, `make test` runs every test.
# Both create .venv from requirements.txt when it is missing or out of date.
# For working on a chapter: `make lab` (JupyterLab, pinned in requirements-lab.txt) and
# `make notebook CHAPTER=<stem>` (execute one chapter into a standalone _build/notebooks/<stem>.ipynb).
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LAB_STAMP := $(VENV)/.lab-installed
CACHE := _build/.jupyter_cache
# Chapters: the notebook files named in _toc.yml (pages with code cells).
CHAPTERS := $(shell grep -oE 'book/[A-Za-z0-9_]+' _toc.yml | sed 's/$$/.md/' | xargs grep -l '^```{code-cell}')
# Fingerprint of what the executed chapters depend on besides their own code cells: the library,
# the pins, the run scale and the committed paper-scale records (a chapter quotes its own record).
LIB_HASH = $(shell { echo "scale=$$PHASEBOOK_SCALE"; cat requirements.txt $$(find lib/phaselab -name '*.py' | sort) \
	$$(find book/records -name '*.json' 2>/dev/null | sort); } | sha256sum | cut -c1-16)
JUPYTER_BOOK := $(VENV)/bin/jupyter-book build . -W -n --keep-going
export JUPYTER_PREFER_ENV_PATH := 1
export PYTHONHASHSEED := 0
# One BLAS thread for numpy: on a 2-core machine two OpenBLAS threads make eigensolvers many times
# slower as soon as anything else runs (600x600 eigvalsh: 3.3 s against 0.02 s under load).
export OPENBLAS_NUM_THREADS := 1
# The checkout being built: ledgers and reports go here even when nbval runs the chapters elsewhere.
export PHASEBOOK_ROOT := $(CURDIR)

# jupyter-cache hashes only code cells: when lib/phaselab, the pins, the scale or a record change, drop the execution
# cache, the saved claims ledgers and Sphinx's environment (so every chapter is read, and run, again).
define fresh_cache
	@mkdir -p _build; if [ "$$(cat _build/.lib-hash 2>/dev/null)" != "$(LIB_HASH)" ]; then \
		echo "phaselab or requirements changed: clearing the execution cache"; \
		rm -rf $(CACHE) _build/ledgers _build/.doctrees; fi; echo $(LIB_HASH) > _build/.lib-hash
endef

.PHONY: book test setup browser clean lab notebook paper

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PYTHON) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (phaselab)" > /dev/null
	touch $(STAMP)

$(LAB_STAMP): $(STAMP) requirements-lab.txt
	$(PYTHON) -m pip install --disable-pip-version-check -q -r requirements-lab.txt
	touch $(LAB_STAMP)

# JupyterLab on this checkout: jupytext opens each chapter's .md as a notebook.
lab: $(LAB_STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# One chapter executed and written as the notebook a reader downloads: make notebook CHAPTER=l2_transitions
notebook: $(STAMP)
	@[ -n "$(CHAPTER)" ] && [ -f book/$(CHAPTER).md ] || { echo "usage: make notebook CHAPTER=<stem of a file in book/>" >&2; exit 2; }
	$(PYTHON) _ext/standalone.py book/$(CHAPTER).md -o _build/notebooks/$(CHAPTER).ipynb

# Headless Chromium from Debian's packages for the test of the rendered book (needs root to install).
browser:
	@command -v chromium > /dev/null || { [ "$$(id -u)" = 0 ] || { echo "install Debian's chromium (apt-get install chromium) to test the rendered book" >&2; exit 1; }; \
		apt-get install -y -q chromium > /dev/null || { apt-get update -q && apt-get install -y -q chromium > /dev/null; }; }

# The book at the papers' sizes: every chapter (or CHAPTER=<stem>) run at PHASEBOOK_SCALE=paper, one
# record each, with its provenance, written to book/records/paper/ (commit them); the reproducibility
# page and the intro show them next to the default scale.
paper: $(STAMP)
	$(PYTHON) tools/scale_record.py --scale paper $(CHAPTER)

book: $(STAMP)
	$(fresh_cache)
	$(JUPYTER_BOOK)
	@echo "Open _build/html/index.html"

# Unit tests (with every chapter run at the smoke scale: tests/test_scales.py); every chapter executed
# under nbval (assertion cells are the regression test), each passing chapter stored in the execution
# cache (_ext/nbval_cache.py) so that the book build that follows renders it without running it
# again; then the rendered book tested in Chromium.
test: $(STAMP) $(LAB_STAMP) browser
	PHASEBOOK_LAB_REQUIRED=1 $(PYTHON) -m pytest tests --ignore=tests/browser
	$(fresh_cache)
	@nbdir=$$(mktemp -d) && trap 'rm -rf "$$nbdir"' EXIT && \
	for chapter in $(CHAPTERS); do \
		$(VENV)/bin/jupytext --quiet --to ipynb -o "$$nbdir/$$(basename $$chapter .md).ipynb" "$$chapter" || exit 1; \
	done && \
	PYTHONPATH=_ext $(PYTHON) -m pytest -p no:cacheprovider -p nbval_cache --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=900 --nbval-store-cache=$(CACHE) --nbval-sources=book "$$nbdir"
	$(JUPYTER_BOOK)
	PHASEBOOK_BROWSER_REQUIRED=1 $(PYTHON) -m pytest -p no:cacheprovider tests/browser

clean:
	rm -rf _build
