"""pytest plugin: store each chapter that passes under nbval in the book's execution cache.

``make test`` executes every chapter under nbval (its assertion cells are the regression test) and
then builds the book.  Without this plugin the build would execute every chapter a second time.
With it, a notebook whose cells all passed is written to the jupyter-cache database that myst-nb
reads (``_build/.jupyter_cache``), keyed exactly as myst-nb keys it (the chapter read by myst-nb's
own reader, see :func:`phaselab.report.read_as_built`), together with its outputs and its execution
time.  The build that follows then finds every chapter in the cache and only renders it.

Usage: ``pytest -p nbval_cache --nbval-lax --nbval-store-cache=_build/.jupyter_cache
--nbval-sources=book NOTEBOOK_DIR`` with ``_ext`` on ``PYTHONPATH``; notebook ``<stem>.ipynb``
is stored as the chapter ``<sources>/<stem>.md``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nbval_cache", "store notebooks that pass under nbval in a jupyter-cache")
    group.addoption("--nbval-store-cache", default=None, help="jupyter-cache folder to store passing notebooks in")
    group.addoption("--nbval-sources", default=None, help="folder of the MyST sources <stem>.md of the notebooks")


def pytest_configure(config: pytest.Config) -> None:
    cache = config.getoption("--nbval-store-cache")
    sources = config.getoption("--nbval-sources")
    if cache is None and sources is None:
        return
    if cache is None or sources is None:
        raise pytest.UsageError("--nbval-store-cache and --nbval-sources go together")
    if not Path(sources).is_dir():
        raise pytest.UsageError(f"--nbval-sources must be a folder, got {sources!r}")
    config.pluginmanager.register(NotebookRecorder(Path(cache), Path(sources)), "nbval_cache_recorder")


class NotebookRecorder:
    """Collects each notebook's cell outputs, durations and outcomes; stores passing notebooks."""

    def __init__(self, cache: Path, sources: Path) -> None:
        self.cache = cache
        self.sources = sources
        self.cells: dict[str, list[pytest.Item]] = defaultdict(list)  # notebook path -> its cells
        self.notebook_of: dict[str, str] = {}  # nodeid -> notebook path
        self.seconds: dict[str, float] = defaultdict(float)
        self.passed: dict[str, set[str]] = defaultdict(set)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if hasattr(item, "test_outputs") and hasattr(item, "cell"):  # an nbval notebook cell
                notebook = str(item.path)
                self.cells[notebook].append(item)
                self.notebook_of[item.nodeid] = notebook

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        notebook = self.notebook_of.get(report.nodeid)
        if notebook is None:
            return
        self.seconds[notebook] += report.duration  # setup of the first cell includes the kernel start
        if report.when == "call" and report.passed:
            self.passed[notebook].add(report.nodeid)
        last = self.cells[notebook][-1]
        if report.when == "teardown" and report.nodeid == last.nodeid:
            self.store(notebook)

    def store(self, notebook: str) -> None:
        """Write the notebook to the cache if every one of its cells passed."""
        cells = self.cells[notebook]
        if len(self.passed[notebook]) != len(cells):
            return
        source = self.sources / f"{Path(notebook).stem}.md"
        if not source.is_file():
            return
        from jupyter_cache import get_cache
        from jupyter_cache.base import CacheBundleIn

        from phaselab.report import read_as_built

        built = read_as_built(source)
        code_cells = [cell for cell in built.cells if cell.cell_type == "code"]
        if [cell.source for cell in code_cells] != [item.cell.source for item in cells]:
            print(f"\nnbval_cache: {source} reads differently under myst-nb; not cached")
            return
        for count, (cell, item) in enumerate(zip(code_cells, cells), start=1):
            cell.outputs = item.test_outputs
            cell.execution_count = count
        get_cache(str(self.cache)).cache_notebook_bundle(
            CacheBundleIn(built, str(source.resolve()), data={"execution_seconds": self.seconds[notebook]}),
            check_validity=False,
            overwrite=True,
        )
