# The book's two commands: `make book` builds the HTML book, `make test` runs every test.
# Both create .venv from requirements.txt when it is missing or out of date.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Chapters: the notebook files named in _toc.yml (pages with code cells).
CHAPTERS := $(shell grep -oE 'book/[A-Za-z0-9_]+' _toc.yml | sed 's/$$/.md/' | xargs grep -l '^```{code-cell}')
# Fingerprint of what the executed chapters depend on besides their own code cells.
LIB_HASH = $(shell cat requirements.txt $$(find lib/phaselab -name '*.py' | sort) | sha256sum | cut -c1-16)
export JUPYTER_PREFER_ENV_PATH := 1
export PYTHONHASHSEED := 0

.PHONY: book test setup clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PYTHON) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (phaselab)" > /dev/null
	touch $(STAMP)

# jupyter-cache hashes only code cells: drop the execution cache when lib/ or the pins change.
book: $(STAMP)
	@if [ "$$(cat _build/.lib-hash 2>/dev/null)" != "$(LIB_HASH)" ]; then \
		echo "phaselab or requirements changed: clearing the execution cache"; rm -rf _build/.jupyter_cache; fi
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo $(LIB_HASH) > _build/.lib-hash
	@echo "Open _build/html/index.html"

# Unit tests, then every chapter executed under nbval (assertion cells are the regression test).
test: $(STAMP)
	$(PYTHON) -m pytest tests
	@nbdir=$$(mktemp -d) && trap 'rm -rf "$$nbdir"' EXIT && \
	for chapter in $(CHAPTERS); do \
		$(VENV)/bin/jupytext --quiet --to ipynb -o "$$nbdir/$$(basename $$chapter .md).ipynb" "$$chapter" || exit 1; \
	done && \
	$(PYTHON) -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=900 "$$nbdir"

clean:
	rm -rf _build
