"""The book's reproducibility report: every chapter's claims ledger and execution record, gathered.

``book/reproducibility.md`` calls these functions; nothing in the report is typed by hand.

* The chapters are the files listed under the ``Chapters`` part of ``_toc.yml``.
* Their claims come from the ledgers the chapters saved while they ran
  (:func:`phaselab.ledger.load_ledgers`).
* Their execution times come from the jupyter-cache database of the build
  (``_build/.jupyter_cache``): the record whose code cells match the chapter as it is now.  Both
  ``make book`` (myst-nb) and ``make test`` (nbval, through ``_ext/nbval_cache.py``) write there.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pandas as pd
import yaml

from phaselab import validation
from phaselab.ledger import NOT_REPRODUCED, REPRODUCED, Ledger


def book_root() -> Path:
    """The book's repository root: ``$PHASEBOOK_ROOT`` or the checkout ``phaselab`` lives in."""
    return Path(os.environ.get("PHASEBOOK_ROOT") or Path(__file__).resolve().parents[2])


REPO_ROOT = book_root()
TOC_PATH = REPO_ROOT / "_toc.yml"
CONFIG_PATH = REPO_ROOT / "_config.yml"
CACHE_PATH = REPO_ROOT / "_build" / ".jupyter_cache"


def toc_part(caption: str = "Chapters", toc_path: Path = TOC_PATH) -> list[str]:
    """Docnames (``book/<stem>``) of the files in the ``_toc.yml`` part with this caption."""
    toc = yaml.safe_load(Path(toc_path).read_text())
    for part in toc.get("parts", []):
        if part.get("caption") == caption:
            return [entry["file"] for entry in part.get("chapters", [])]
    raise ValueError(f"caption must name a part of {toc_path}, got {caption!r}")


def chapter_title(docname: str, root: Path = REPO_ROOT) -> str:
    """The first level-1 heading of ``<root>/<docname>.md``."""
    for line in (Path(root) / f"{docname}.md").read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise ValueError(f"docname must name a page with a '# ' title, got {docname!r}")


def myst_extensions(config_path: Path = CONFIG_PATH) -> list[str]:
    """The MyST syntax extensions the book enables (``parse.myst_enable_extensions``)."""
    config = yaml.safe_load(Path(config_path).read_text())
    return list(config.get("parse", {}).get("myst_enable_extensions", []))


def read_as_built(path: Path, config_path: Path = CONFIG_PATH) -> nbformat.NotebookNode:
    """Read a MyST notebook exactly as myst-nb reads it during ``make book``.

    The execution cache is keyed on a hash of this notebook's code cells (with their metadata) and
    kernelspec, so this is the notebook whose cache record describes the chapter's last run.
    """
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    config = MdParserConfig(enable_extensions=set(myst_extensions(config_path)))
    return read_myst_markdown_notebook(Path(path).read_text(), config=config, add_source_map=True, path=str(path))


@dataclass(frozen=True)
class ExecutionRecord:
    """How long a chapter's current code took to execute, and when that run finished."""

    seconds: float
    finished: datetime


def cached_execution(path: Path, cache_path: Path = CACHE_PATH) -> ExecutionRecord | None:
    """The execution record of the chapter at ``path`` as it is now, or ``None`` if never run so."""
    if not (Path(cache_path) / "global.db").is_file():
        return None
    from jupyter_cache import get_cache

    try:
        record = get_cache(str(cache_path)).match_cache_notebook(read_as_built(path))
    except KeyError:
        return None
    seconds = record.data.get("execution_seconds")
    if seconds is None:
        return None
    finished = record.created if record.created.tzinfo else record.created.replace(tzinfo=timezone.utc)
    return ExecutionRecord(float(seconds), finished)


def claims_frame(ledgers: list[Ledger]) -> pd.DataFrame:
    """One row per claim of every ledger, with the chapter and the source paper."""
    rows = [
        {"chapter": ledger.chapter, "source": ledger.source, **vars(claim)}
        for ledger in ledgers
        for claim in ledger.claims
    ]
    columns = ["chapter", "source", "claim", "paper_value", "our_value", "tolerance", "reason", "verdict", "section"]
    return pd.DataFrame(rows, columns=columns)


def chapter_summary(docnames: list[str], ledgers: list[Ledger], cache_path: Path = CACHE_PATH,
                    root: Path = REPO_ROOT) -> pd.DataFrame:
    """Per chapter: its source, the number of claims by verdict, and its last execution.

    ``builds_ledger`` says whether the chapter's source creates a ``Ledger`` at all (a chapter still
    being written may not), ``has_ledger`` whether a saved ledger was found for it.
    """
    by_stem = {ledger.chapter: ledger for ledger in ledgers}
    rows = []
    for docname in docnames:
        stem = Path(docname).name
        ledger = by_stem.get(stem)
        counts = ledger.counts() if ledger else {REPRODUCED: 0, NOT_REPRODUCED: 0}
        source_path = Path(root) / f"{docname}.md"
        record = cached_execution(source_path, cache_path)
        rows.append(
            {
                "docname": docname,
                "stem": stem,
                "source": ledger.source if ledger else "",
                "builds_ledger": "Ledger(" in source_path.read_text(),
                "has_ledger": ledger is not None,
                "claims": len(ledger.claims) if ledger else 0,
                REPRODUCED: counts[REPRODUCED],
                NOT_REPRODUCED: counts[NOT_REPRODUCED],
                "seconds": record.seconds if record else math.nan,
                "finished": record.finished if record else None,
            }
        )
    return pd.DataFrame(rows)


def escape_cell(text: object) -> str:
    """Make text safe inside a Markdown pipe-table cell (one line, no bare ``|``)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def literal_markdown(text: object) -> str:
    """Ledger text shown as it is in Markdown: the characters of emphasis, code, math and links are
    escaped, so that ``delta*_j(t)`` or ``beta_c`` never turn into italics or roles."""
    return re.sub(r"([\\`*_\[\]<>$])", r"\\\1", " ".join(str(text).split()))


def markdown_table(frame: pd.DataFrame, widths: Sequence[int] | None = None) -> str:
    """A MyST Markdown table of ``frame``; cells are escaped.

    Without ``widths``: a (GitHub-flavoured) pipe table.  With ``widths`` (one relative width per
    column): a MyST ``list-table`` of class ``phasebook-table`` with those column shares at full page
    width, long cells wrapped (``_static/phasebook.css``), so that wide text cannot push the last
    columns out of view.
    """
    cells = [[escape_cell(c) for c in frame.columns]]
    cells += [[escape_cell(v) for v in row] for row in frame.itertuples(index=False)]
    if widths is None:
        rule = ["---"] * frame.shape[1]
        return "\n".join("| " + " | ".join(row) + " |" for row in [cells[0], rule, *cells[1:]])
    widths = [validation.integer("widths", w, minimum=1) for w in widths]
    if len(widths) != frame.shape[1]:
        raise ValueError(f"widths must give one width per column ({frame.shape[1]}), got {len(widths)}")
    options = [":header-rows: 1", f":widths: {' '.join(map(str, widths))}", ":width: 100%", ":class: phasebook-table"]
    rows = ["\n".join(("* - " if i == 0 else "  - ") + cell for i, cell in enumerate(row)) for row in cells]
    return "\n".join([":::{list-table}", *options, "", *rows, ":::"])


def format_seconds(seconds: float) -> str:
    """``83.2`` -> ``'1 min 23 s'``; NaN -> ``'not recorded'``."""
    if not math.isfinite(seconds):
        return "not recorded"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"
