"""The smoke scale: every chapter run with the paper's grids, keys and shapes at sizes that take
seconds, so that what breaks only at ``PHASEBOOK_SCALE=paper`` (a key missing from a paper-scale
grid, an empty selection, a shape) breaks here, in CI, instead of after hours.

Sizes come from ``config.by_scale(default, paper)``: at the smoke scale it returns the paper value
with every integer shrunk (``config.smoke_size``) unless the chapter gives a ``smoke=`` value.  The
statistics are switched off (``config.statistics_checked``), and so are the chapters' ``assert``
cells (``PYTHONOPTIMIZE``): at these sizes nothing converges and no standard error means anything.
What is tested is that every code path of the paper scale runs to the end and fills the ledger.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from phaselab import config, ledger, report, stats

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = [Path(docname).name for docname in report.toc_part("Chapters", REPO / "_toc.yml")]
PARALLEL = 2  # chapter processes at once (each runs one thread)


def test_smoke_size_keeps_small_sizes_and_order():
    sizes = np.array([1, 2, 10, 16, 17, 20, 50, 100, 101, 200, 500, 2000, 100_000])
    shrunk = np.array([config.smoke_size(int(n)) for n in sizes])
    assert np.array_equal(shrunk[sizes <= config.SMOKE_KEEP], sizes[sizes <= config.SMOKE_KEEP])
    assert np.all(np.diff(shrunk) >= 0) and np.all(shrunk <= sizes), shrunk  # a grid keeps its order
    assert config.smoke_size(100_000) < 2000
    # sizes at least 25% apart stay distinct (a grid keeps its length)
    n = np.arange(1, 200_000)
    apart = np.array([config.smoke_size(int(k)) for k in n]), np.array([config.smoke_size(int(np.ceil(1.25 * k))) for k in n])
    assert np.all(apart[1] > apart[0])


def test_by_scale_at_each_scale(monkeypatch):
    monkeypatch.setenv("PHASEBOOK_SCALE", "default")
    assert config.by_scale(5, 10) == 5
    monkeypatch.setenv("PHASEBOOK_SCALE", "paper")
    assert config.by_scale(5, [10, 20], smoke=3) == [10, 20]
    monkeypatch.setenv("PHASEBOOK_SCALE", "smoke")
    assert config.by_scale(5, 2000) == config.smoke_size(2000)
    assert config.by_scale(5, 2000, smoke=3) == 3
    # integers shrink wherever they are; floats, booleans and the containers' types stay
    grid = config.by_scale(None, (0.5, [10, 500], np.array([16, 400]), True))
    assert grid[0] == 0.5 and grid[3] is True and isinstance(grid, tuple)
    assert grid[1] == [10, config.smoke_size(500)]
    assert grid[2].tolist() == [16, config.smoke_size(400)] and grid[2].dtype == np.array([1]).dtype
    # one value maps to one value: a key chosen from a paper grid stays in the shrunk grid
    assert config.by_scale(5, 200) in config.by_scale([5], [10, 100, 200])


def test_statistics_are_checked_except_at_the_smoke_scale(monkeypatch):
    measured, predicted, no_spread = np.ones(3), np.ones(3), np.zeros(3)
    book = ledger.Ledger("tiny", ["wang2026phase"])
    monkeypatch.setenv("PHASEBOOK_SCALE", "paper")
    assert config.statistics_checked()
    with pytest.raises(ValueError, match="sem"):
        stats.goodness_of_fit(measured, predicted, no_spread)
    with pytest.raises(ValueError, match="finite"):
        book.compare("A claim", 1.0, math.nan, 0.1, "why", "sec-tiny")
    monkeypatch.setenv("PHASEBOOK_SCALE", "smoke")
    assert not config.statistics_checked()
    stats.goodness_of_fit(measured, predicted, no_spread)
    assert not book.compare("A claim", 1.0, math.nan, math.inf, "why", "sec-tiny")
    with pytest.raises(ValueError, match="finite"):  # the paper's value is never measured
        book.compare("A claim", math.nan, 1.0, 0.1, "why", "sec-tiny")


def _run_at_smoke_scale(stem: str, scratch: Path) -> tuple[int, str, Path]:
    """Execute chapter ``stem`` at the smoke scale in a fresh process and kernel; return its exit
    status, the tail of its output and the folder its ledger was saved to."""
    ledgers = scratch / stem / "ledgers"
    env = {**os.environ, "PHASEBOOK_SCALE": "smoke", "PYTHONOPTIMIZE": "1", "PHASEBOOK_LEDGER_DIR": str(ledgers),
           "PHASEBOOK_ROOT": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    executed = scratch / stem / f"{stem}.ipynb"
    executed.parent.mkdir(parents=True)
    done = subprocess.run([sys.executable, str(REPO / "tools" / "scale_record.py"), "--execute-only",
                           str(REPO / "book" / f"{stem}.md"), str(executed), "900"],
                          env=env, capture_output=True, text=True)
    return done.returncode, (done.stdout + done.stderr)[-6000:], ledgers


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> dict[str, tuple[int, str, Path]]:
    scratch = tmp_path_factory.mktemp("smoke")
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = pool.map(lambda stem: _run_at_smoke_scale(stem, scratch), CHAPTERS)
        return dict(zip(CHAPTERS, results))


@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_runs_at_the_smoke_scale(stem, smoke_runs):
    status, tail, ledgers = smoke_runs[stem]
    assert status == 0, f"{stem} failed at PHASEBOOK_SCALE=smoke:\n{tail}"
    saved = {book.chapter: book for book in ledger.load_ledgers(ledgers)}
    assert stem in saved and saved[stem].claims, f"{stem} saved no claims ledger at the smoke scale"
