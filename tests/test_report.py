"""Unit tests of phaselab.report (the reproducibility page) and phaselab.plotting (the figure style)."""

import math
from pathlib import Path

import matplotlib as mpl
import pytest

from phaselab import ledger, plotting, report

CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A test chapter

```{code-cell} ipython3
:tags: [remove-cell]
x = 1
```

Some text.

```{code-cell} ipython3
print(x)
```
"""

TOC = """format: jb-book
root: book/intro
parts:
  - caption: Chapters
    chapters:
      - file: book/first
      - file: book/second
  - caption: Back matter
    chapters:
      - file: book/references
"""


@pytest.fixture
def book(tmp_path: Path) -> Path:
    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text(TOC)
    (tmp_path / "_config.yml").write_text("parse:\n  myst_enable_extensions: [dollarmath, colon_fence]\n")
    for stem in ("first", "second"):
        (tmp_path / "book" / f"{stem}.md").write_text(CHAPTER.replace("A test chapter", f"The {stem} chapter"))
    return tmp_path


def test_toc_part_lists_the_files_of_a_part(book: Path):
    assert report.toc_part("Chapters", book / "_toc.yml") == ["book/first", "book/second"]
    assert report.toc_part("Back matter", book / "_toc.yml") == ["book/references"]
    with pytest.raises(ValueError, match="caption"):
        report.toc_part("Appendices", book / "_toc.yml")


def test_chapter_title_is_the_first_heading(book: Path):
    assert report.chapter_title("book/second", book) == "The second chapter"


def test_cached_execution_matches_the_chapter_as_it_is_now(book: Path):
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    chapter, cache = book / "book" / "first.md", book / "cache"
    assert report.cached_execution(chapter, cache) is None  # no cache yet
    notebook = report.read_as_built(chapter, book / "_config.yml")
    assert [c.source for c in notebook.cells if c.cell_type == "code"] == ["x = 1", "print(x)"]
    get_cache(str(cache)).cache_notebook_bundle(
        CacheBundleIn(notebook, str(chapter), data={"execution_seconds": 12.5}), check_validity=False
    )
    record = report.cached_execution(chapter, cache)
    assert record is not None and record.seconds == 12.5 and record.finished.tzinfo is not None
    chapter.write_text(chapter.read_text().replace("Some text.", "Other text."))  # prose only
    assert report.cached_execution(chapter, cache).seconds == 12.5
    chapter.write_text(chapter.read_text().replace("x = 1", "x = 2"))  # code changed: not run yet
    assert report.cached_execution(chapter, cache) is None


def test_summary_counts_claims_per_chapter(book: Path):
    first = ledger.Ledger("first", "Paper A")
    first.compare("a number", 1.0, 1.05, 0.1, "2 SEM", "sec-a")
    first.check("a statement", "yes", "no", False, "the test fails", "sec-b")
    claims = report.claims_frame([first])
    assert list(claims["verdict"]) == [ledger.REPRODUCED, ledger.NOT_REPRODUCED]
    assert list(claims["chapter"]) == ["first", "first"]
    summary = report.chapter_summary(["book/first", "book/second"], [first], book / "cache", book)
    assert list(summary["has_ledger"]) == [True, False]
    assert list(summary["builds_ledger"]) == [False, False]  # the test chapters make no Ledger
    assert list(summary["claims"]) == [2, 0]
    assert list(summary[ledger.REPRODUCED]) == [1, 0] and list(summary[ledger.NOT_REPRODUCED]) == [1, 0]
    assert math.isnan(summary["seconds"][0])


def test_markdown_table_escapes_cells():
    import pandas as pd

    table = report.markdown_table(pd.DataFrame({"Claim": ["a | b", "two\nlines"], "Value": [1, 2.5]}))
    assert table.splitlines() == [
        "| Claim | Value |",
        "| --- | --- |",
        "| a \\| b | 1.0 |",
        "| two lines | 2.5 |",
    ]


def test_literal_markdown_escapes_emphasis_math_and_code():
    assert report.literal_markdown("delta*_j(t) and *x*, $a$, `c`, [l]") == (
        r"delta\*\_j(t) and \*x\*, \$a\$, \`c\`, \[l\]"
    )


@pytest.mark.parametrize(
    "seconds, text", [(12.34, "12.3 s"), (83.2, "1 min 23 s"), (600, "10 min 00 s"), (math.nan, "not recorded")]
)
def test_format_seconds(seconds, text):
    assert report.format_seconds(seconds) == text


def test_book_style_is_readable_on_dark_and_light_pages():
    plotting.use_book_style()
    assert mpl.rcParams["figure.facecolor"] == "white" and mpl.rcParams["savefig.facecolor"] == "white"
    assert not mpl.rcParams["savefig.transparent"]
    colours = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    assert [c.upper() for c in colours] == list(plotting.OKABE_ITO)
    assert set(plotting.VERDICT_COLOURS) == set(ledger.VERDICTS)


def test_markdown_table_with_widths_is_a_list_table_with_column_shares():
    import pandas as pd

    frame = pd.DataFrame({"Claim": ["a | b"], "Verdict": ["reproduced"]})
    assert report.markdown_table(frame, widths=[3, 1]).splitlines() == [
        ":::{list-table}",
        ":header-rows: 1",
        ":widths: 3 1",
        ":width: 100%",
        ":class: phasebook-table",
        "",
        "* - Claim",
        "  - Verdict",
        "* - a \\| b",
        "  - reproduced",
        ":::",
    ]
    with pytest.raises(ValueError, match="one width per column"):
        report.markdown_table(frame, widths=[1])
    with pytest.raises(ValueError, match="widths must be >= 1"):
        report.markdown_table(frame, widths=[0, 1])
