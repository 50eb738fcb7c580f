"""The downloadable notebook (_ext/standalone.py): figures as outputs, numbers as text, no MyST left."""

import json
import sys
from pathlib import Path

import nbformat
import pytest

from phaselab import report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
import standalone  # noqa: E402

MARKDOWN = """(sec-demo)=
## The demo section

The value is {glue:text}`gamma:.3f` and the count {glue:text}`count`; see {numref}`fig-demo`,
{eq}`eq-demo`, {ref}`the section <sec-demo>`, {ref}`sec-demo`, {cite}`ziyin2023zeroth` and {cite:t}`ziyin2023zeroth`.

$$
L(\\gamma) = \\min_s \\bar\\ell(s, \\gamma)
$$ (eq-demo)

```{glue:figure} fig-key
:name: fig-demo
:alt: A line.

A caption with {glue:text}`count`.
```

:::{note} An aside
:class: dropdown
Inside the aside, {eq}`eq-demo`.
:::

```{exercise} Change the depth
:label: ex-demo

Do something.
```

```{solution-start} ex-demo
:class: dropdown
```
"""

PNG = "iVBORw0KGgo="


def glue_output(name: str, data: dict) -> dict:
    return nbformat.v4.new_output(
        "display_data",
        data={report.GLUE_PREFIX + key: value for key, value in data.items()},
        metadata={"scrapbook": {"name": name, "mime_prefix": report.GLUE_PREFIX}, "image/png": {"width": 720}},
    )


def notebook() -> nbformat.NotebookNode:
    code = nbformat.v4.new_code_cell("glue(...)", execution_count=1)
    code.outputs = [
        glue_output("gamma", {"text/plain": "0.123456"}),
        glue_output("count", {"text/plain": "7"}),
        glue_output("fig-key", {"image/png": PNG, "text/plain": "<Figure>"}),
        nbformat.v4.new_output("stream", name="stdout", text="printed\n"),
    ]
    return nbformat.v4.new_notebook(cells=[code, nbformat.v4.new_markdown_cell(MARKDOWN),
                                           nbformat.v4.new_markdown_cell("```{solution-end}\n```")])


def convert(chapter: int | None = 2) -> nbformat.NotebookNode:
    return standalone.standalone_notebook(notebook(), chapter=chapter,
                                          citations={"ziyin2023zeroth": ("Ziyin and Ueda", "2023")},
                                          titles={}, preface="About this notebook.")


def test_figures_become_outputs_and_glued_values_text():
    result = convert()
    code = next(cell for cell in result.cells if cell.cell_type == "code")
    images = [o for o in code.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1 and images[0]["metadata"]["image/png"]["width"] == 720
    assert [o["output_type"] for o in code.outputs] == ["stream", "display_data"]
    text = "\n".join(cell.source for cell in result.cells if cell.cell_type == "markdown")
    assert "The value is 0.123 and the count 7" in text
    assert "**Figure 2.1.** A caption with 7." in text


def test_references_are_numbered_like_the_book():
    text = "\n".join(cell.source for cell in convert().cells if cell.cell_type == "markdown")
    assert "[Figure 2.1](#fig-demo)" in text and "[(2.1)](#eq-demo)" in text
    assert "\\tag{2.1}" in text and '<a id="eq-demo"></a>' in text and '<a id="sec-demo"></a>' in text
    assert "[the section](#sec-demo)" in text and "[The demo section](#sec-demo)" in text
    assert "(Ziyin and Ueda, 2023) and Ziyin and Ueda (2023)." in text
    assert "> **An aside**" in text and "> Inside the aside, [(2.1)](#eq-demo)." in text
    assert "**Exercise 2.1** (Change the depth)" in text and "**Solution to Exercise 2.1.**" in text
    unnumbered = "\n".join(cell.source for cell in convert(None).cells if cell.cell_type == "markdown")
    assert "**Figure 1.**" in unnumbered


def test_no_myst_left_and_the_notebook_validates():
    result = convert()
    nbformat.validate(result)
    text = json.dumps(result)
    assert "{glue" not in text and "(sec-demo)=" not in text and "{eq}" not in text and ":::" not in text
    assert result.cells[0].source == "About this notebook."


def test_unknown_myst_is_an_error():
    book = notebook()
    book.cells[1].source += "\n{unknownrole}`x`\n"
    with pytest.raises(standalone.MystLeftOver, match="unknownrole"):
        standalone.standalone_notebook(book, chapter=1, citations={"ziyin2023zeroth": ("Z", "1")}, titles={})
    book = notebook()
    book.cells[1].source += "\n```{mystery}\nx\n```\n"
    with pytest.raises(standalone.MystLeftOver, match="mystery"):
        standalone.standalone_notebook(book, chapter=1, citations={"ziyin2023zeroth": ("Z", "1")}, titles={})


def test_the_execution_table_points_to_the_online_book():
    """MyST-NB fills {nb-exec-table} at build time; the notebook says where the table is instead."""
    book = notebook()
    book.cells[1].source += "\n```{nb-exec-table}\n```\n"
    result = standalone.standalone_notebook(book, chapter=1, citations={"ziyin2023zeroth": ("Z", "1")}, titles={})
    assert "nb-exec-table" not in json.dumps(result) and "online book" in result.cells[1].source


def test_the_command_executes_a_chapter(tmp_path: Path):
    """What a reader runs locally (``make notebook``) gives the same kind of notebook."""
    root = tmp_path
    (root / "book").mkdir()
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: Chapters\n"
                                   "    numbered: true\n    chapters:\n      - file: book/demo\n")
    (root / "book" / "intro.md").write_text("# Intro\n")
    repo = Path(__file__).resolve().parents[1]
    (root / "book" / "references.bib").write_text((repo / "book" / "references.bib").read_text())
    (root / "book" / "demo.md").write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n# Demo\n\n"
        "```{code-cell} ipython3\nimport matplotlib.pyplot as plt\nfrom myst_nb import glue\n"
        "from phaselab import plotting\nplotting.use_book_style()\nfig, (ax,) = plotting.figure(1, width=0.5)\n"
        "ax.plot([0, 1])\nglue('fig-line', fig, display=False)\nplt.close(fig)\nglue('answer', 42, display=False)\n```\n\n"
        "The answer is {glue:text}`answer`.\n\n```{glue:figure} fig-line\n:name: fig-demo-line\n:alt: A line.\n\n"
        "A line.\n```\n"
    )
    output = tmp_path / "demo.ipynb"
    assert standalone.main([str(root / "book" / "demo.md"), "-o", str(output)]) == 0
    result = nbformat.read(output, as_version=4)
    nbformat.validate(result)
    images = [o for c in result.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1 and images[0]["metadata"]["image/png"]["width"] == round(0.5 * 670)
    text = "\n".join(c.source for c in result.cells if c.cell_type == "markdown")
    assert "The answer is 42." in text and "**Figure 1.1.** A line." in text


def test_glued_values_kept_outside_the_notebook_are_used():
    """myst-nb moves glue outputs into <page>.glue.json; the figure goes to the cell before its caption."""
    book = notebook()
    glued = report.glued_values(book)
    book.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="printed\n")]
    result = standalone.standalone_notebook(book, chapter=1, citations={"ziyin2023zeroth": ("Z", "1")}, titles={},
                                            glued=glued)
    outputs = result.cells[0].outputs
    assert [o["output_type"] for o in outputs] == ["stream", "display_data"] and "image/png" in outputs[1]["data"]
    assert "The value is 0.123" in result.cells[1].source


def test_list_tables_become_pipe_tables():
    book = notebook()
    book.cells[1].source += "\n:::{list-table}\n:header-rows: 1\n:widths: 1 1\n\n* - Claim\n  - Verdict\n* - {cite:t}`ziyin2023zeroth`\n  - reproduced\n:::\n"
    result = standalone.standalone_notebook(book, chapter=1, citations={"ziyin2023zeroth": ("Z", "1")}, titles={})
    assert "| Claim | Verdict |\n| --- | --- |\n| Z (1) | reproduced |" in result.cells[1].source
