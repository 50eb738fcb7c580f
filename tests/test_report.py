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


def test_page_title_is_the_first_level_one_heading(book: Path):
    """Not the jupytext header's lines, not a code cell's comment further down."""
    assert report.page_title("book/first", book) == "The first chapter"
    (book / "book" / "untitled.md").write_text("Text only.\n\n```python\n# a comment\n```\n")
    assert report.page_title("book/untitled", book) == "book/untitled"
    with pytest.raises(ValueError, match="docname"):
        report.page_title("book/missing", book)


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


def test_summary_counts_findings_per_chapter_and_paper(book: Path):
    first = ledger.Ledger("first", ["ziyin2023zeroth", "ersoy2026metastable"])
    first.compare("a number", 1.0, 1.05, 0.1, "2 SEM", "sec-a")
    first.check("a statement", "yes", "no", False, "the test fails", "sec-b", paper="ersoy2026metastable")
    first.check("the same finding", "yes", "no", False, "the test fails", "sec-b", paper="ersoy2026metastable",
                finding="row-2")
    first.compare("our theory", 1.0, 1.0, 0.1, "2 SEM", "sec-c", ours=True)
    claims = report.claims_frame([first])
    assert list(claims["kind"]) == [ledger.REPRODUCED, ledger.DOES_NOT_REPRODUCE, ledger.DOES_NOT_REPRODUCE,
                                    ledger.PREDICTION]
    assert list(claims["chapter"]) == ["first"] * 4
    summary = report.chapter_summary(["book/first", "book/second"], [first], book / "cache", book)
    assert list(summary["has_ledger"]) == [True, False]
    assert list(summary["builds_ledger"]) == [False, False]  # the test chapters make no Ledger
    assert list(summary["rows"]) == [4, 0] and list(summary["findings"]) == [3, 0]
    assert list(summary[ledger.REPRODUCED]) == [1, 0] and list(summary[ledger.DOES_NOT_REPRODUCE]) == [1, 0]
    assert list(summary["our prediction: holds"]) == [1, 0]
    assert math.isnan(summary["seconds"][0])
    per_paper = report.paper_tally([first], ["ziyin2023zeroth", "ersoy2026metastable"]).set_index("paper")
    assert per_paper.loc["ziyin2023zeroth", ledger.REPRODUCED] == 1
    assert per_paper.loc["ziyin2023zeroth", "our prediction: holds"] == 1
    assert per_paper.loc["ersoy2026metastable", ledger.DOES_NOT_REPRODUCE] == 1


def test_markdown_table_escapes_cells():
    import pandas as pd

    table = report.markdown_table(pd.DataFrame({"Claim": ["a | b", "two\nlines"], "Value": [1, 2.5]}))
    assert table.splitlines() == [
        "| Claim | Value |",
        "| --- | --- |",
        "| a \\| b | 1.0 |",
        "| two lines | 2.5 |",
    ]


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
    assert min(mpl.rcParams[key] for key in ("xtick.labelsize", "ytick.labelsize", "legend.fontsize",
                                             "font.size")) >= plotting.MIN_FONT_PT


def test_figures_fit_the_column_with_at_most_two_panels_a_row():
    plotting.use_book_style()
    fig, axes = plotting.figure(3, width=1.0)
    assert len(axes) == 3 and fig.get_size_inches()[0] == pytest.approx(plotting.COLUMN_INCHES)
    assert len({round(ax.get_position().x0, 3) for ax in axes}) == 2  # two columns (and two rows)
    half, _ = plotting.figure(1, width=0.5)
    assert half.get_size_inches()[0] == pytest.approx(0.5 * plotting.COLUMN_INCHES)
    for bad in (dict(panels=0), dict(width=1.5), dict(aspect=0.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            plotting.figure(**{"panels": 1, **bad})


def test_png_carries_its_css_width_and_smallest_font():
    from io import BytesIO

    from PIL import Image

    plotting.use_book_style()
    fig, (ax,) = plotting.figure(1, width=0.6)
    ax.plot([0, 1], label="line")
    ax.set_title("small", fontsize=7)
    data, size = plotting.png_bytes(fig)
    image = Image.open(BytesIO(data))
    assert size["width"] == round(0.6 * plotting.COLUMN_PX)
    assert image.size[0] == pytest.approx(plotting.RETINA * size["width"], abs=2)
    assert float(image.text[plotting.PNG_FONT_KEY]) == 7 and float(image.text[plotting.PNG_DPI_KEY]) == 200


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
