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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pandas as pd
import yaml

from phaselab import config, validation
from phaselab.ledger import Ledger, findings, tally


def book_root() -> Path:
    """The book's repository root (:func:`phaselab.config.book_root`); ``ValueError`` outside one."""
    root = config.book_root()
    if root is None:
        raise ValueError("the working directory must lie inside a checkout of the book (or set PHASEBOOK_ROOT)")
    return root


def toc_path() -> Path:
    return book_root() / "_toc.yml"


def config_path() -> Path:
    return book_root() / "_config.yml"


def cache_path() -> Path:
    return book_root() / "_build" / ".jupyter_cache"


def toc_part(caption: str = "Chapters", toc: Path | None = None) -> list[str]:
    """Docnames (``book/<stem>``) of the files in the ``_toc.yml`` part with this caption."""
    toc_file = Path(toc) if toc is not None else toc_path()
    toc = yaml.safe_load(toc_file.read_text())
    for part in toc.get("parts", []):
        if part.get("caption") == caption:
            return [entry["file"] for entry in part.get("chapters", [])]
    raise ValueError(f"caption must name a part of {toc_file}, got {caption!r}")


GLUE_PREFIX = "application/papermill.record/"  # how myst-nb's glue stores a value in a cell output
IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")


def glued_values(notebook: nbformat.NotebookNode) -> dict[str, dict]:
    """Each glued key's MIME bundle (prefix removed) and output metadata, from the code cells.

    (A notebook that myst-nb wrote after rendering has no glue outputs left: it keeps them in
    ``<page>.glue.json``.)
    """
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                data = {key.removeprefix(GLUE_PREFIX): value for key, value in output.get("data", {}).items()}
                values[name] = {"data": data, "metadata": output.get("metadata", {})}
    return values


def glued_numbers(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """Every value the notebook glued that is not a figure, as its plain text, by glue key."""
    return {name: value["data"]["text/plain"].strip("'\"") for name, value in glued_values(notebook).items()
            if "text/plain" in value["data"] and not any(kind in value["data"] for kind in IMAGE_TYPES)}


def page_title(docname: str, root: Path | None = None) -> str:
    """The title of page ``docname`` (``book/<stem>``): its first level-one heading outside code
    fences (a ``# comment`` in a code cell is not one), else the docname."""
    path = (Path(root) if root is not None else book_root()) / f"{docname}.md"
    if not path.is_file():
        raise ValueError(f"docname must name a page book/<stem> of the book, got {docname!r} (no {path})")
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("# "):
            return line[2:].strip()
    return docname


def myst_extensions(config_file: Path | None = None) -> list[str]:
    """The MyST syntax extensions the book enables (``parse.myst_enable_extensions``)."""
    settings = yaml.safe_load(Path(config_file or config_path()).read_text())
    return list(settings.get("parse", {}).get("myst_enable_extensions", []))


def read_as_built(path: Path, config_file: Path | None = None) -> nbformat.NotebookNode:
    """Read a MyST notebook exactly as myst-nb reads it during ``make book``.

    The execution cache is keyed on a hash of this notebook's code cells (with their metadata) and
    kernelspec, so this is the notebook whose cache record describes the chapter's last run.
    """
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    parser_config = MdParserConfig(enable_extensions=set(myst_extensions(config_file)))
    return read_myst_markdown_notebook(Path(path).read_text(), config=parser_config, add_source_map=True, path=str(path))


@dataclass(frozen=True)
class ExecutionRecord:
    """How long a chapter's current code took to execute, and when that run finished."""

    seconds: float
    finished: datetime


def cached_execution(path: Path, cache: Path | None = None) -> ExecutionRecord | None:
    """The execution record of the chapter at ``path`` as it is now, or ``None`` if never run so."""
    cache = Path(cache) if cache is not None else cache_path()
    if not (cache / "global.db").is_file():
        return None
    from jupyter_cache import get_cache

    try:
        record = get_cache(str(cache)).match_cache_notebook(read_as_built(path, Path(path).resolve().parents[1] / "_config.yml"))
    except KeyError:
        return None
    seconds = record.data.get("execution_seconds")
    if seconds is None:
        return None
    finished = record.created if record.created.tzinfo else record.created.replace(tzinfo=timezone.utc)
    return ExecutionRecord(float(seconds), finished)


def claims_frame(ledgers: list[Ledger]) -> pd.DataFrame:
    """One row per claim of every ledger, with its chapter and verdict."""
    rows = [
        {"chapter": ledger.chapter, **vars(claim), "verdict": claim.verdict}
        for ledger in ledgers
        for claim in ledger.claims
    ]
    columns = ["chapter", "paper", "claim", "paper_value", "our_value", "tolerance", "reason", "kind", "holds",
               "verdict", "section", "finding"]
    return pd.DataFrame(rows, columns=columns)


def paper_tally(ledgers: list[Ledger], papers: Sequence[str]) -> pd.DataFrame:
    """Per paper (bibliography key, in the order given): its claims' findings by kind, then our
    predictions made in its setting, split into those that hold and those that fail.  A finding
    shared by several rows of a chapter counts once."""
    rows = []
    for paper in papers:
        counts = {key: 0 for key in tally([])}
        for ledger in ledgers:
            for key, count in tally([c for c in ledger.claims if c.paper == paper]).items():
                counts[key] += count
        rows.append({"paper": paper, **counts})
    return pd.DataFrame(rows)


def chapter_summary(docnames: list[str], ledgers: list[Ledger], cache: Path | None = None,
                    root: Path | None = None) -> pd.DataFrame:
    """Per chapter: its papers, the number of findings by kind, and its last execution.

    ``builds_ledger`` says whether the chapter's source creates a ``Ledger`` at all (a chapter still
    being written may not), ``has_ledger`` whether a saved ledger was found for it.
    """
    root = Path(root) if root is not None else book_root()
    by_stem = {ledger.chapter: ledger for ledger in ledgers}
    rows = []
    for docname in docnames:
        stem = Path(docname).name
        ledger = by_stem.get(stem)
        counts = tally(ledger.claims if ledger else [])
        source_path = root / f"{docname}.md"
        record = cached_execution(source_path, cache)
        rows.append(
            {
                "docname": docname,
                "stem": stem,
                "source": ledger.source if ledger else "",
                "builds_ledger": "Ledger(" in source_path.read_text(),
                "has_ledger": ledger is not None,
                "rows": len(ledger.claims) if ledger else 0,
                "findings": len(findings(ledger.claims)) if ledger else 0,
                **counts,
                "seconds": record.seconds if record else math.nan,
                "finished": record.finished if record else None,
            }
        )
    return pd.DataFrame(rows)


def escape_cell(text: object) -> str:
    """Make text safe inside a Markdown pipe-table cell (one line, no bare ``|``)."""
    return " ".join(str(text).split()).replace("|", "\\|")


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
