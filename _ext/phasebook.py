"""Local Sphinx extension of the book (loaded through ``sphinx.local_extensions`` in _config.yml).

It does what the stock Jupyter Book 1.x set-up does not:

* **Download the executed notebook, standing alone.** myst-nb writes every executed chapter to
  ``_build/jupyter_execute/<docname>.ipynb``; this extension turns it into an ordinary notebook
  (:mod:`standalone`: figures as cell outputs, glued numbers as text, no MyST-only syntax), writes
  it next to the page sources (``_build/html/_sources/<docname>.ipynb``) and offers it in the
  page's download menu.
* **MathJax without a network.** MathJax 3 is served from the build (``_static/mathjax``), copied
  from the pinned ``sphinx-mathjax-offline`` package, so the book's mathematics renders offline and
  does not depend on a CDN.
* **A clean browser console.**  The theme's colour mode defaults to ``auto`` (pydata-sphinx-theme
  logs an error for the empty default that Jupyter Book leaves), and scripts registered twice
  (sphinx-thebe 0.3.1 under Sphinx 7.4 adds its inline configuration twice, a redeclared ``const``)
  are written once.
* **Mathematics in link texts.**  A ``{ref}`` to a section whose title holds mathematics gets the
  title as plain text from Sphinx, raw TeX included ("The threshold \\delta^*(t)"); such links get
  a copy of the title's nodes instead, so their mathematics is typeset like the title's.
* **Pages that are always rebuilt, last.** Docnames in ``phasebook_always_read`` (the
  reproducibility report) are re-read, hence re-executed, on every build, and after every other
  page (Sphinx reads documents in sorted docname order; they are moved to the end of that list), so
  they see what the chapters executed in the same build wrote.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat
import standalone
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

MATHJAX_DISTRIBUTION = "sphinx-mathjax-offline"
MATHJAX_FOLDER = "sphinx-mathjax-offline/static/mathjax"
MATHJAX_TARGET = "mathjax"  # under _static/


def always_read(app: Sphinx, env: Any, added: set, changed: set, removed: set) -> list[str]:
    """Mark the configured docnames as changed, so they are re-read (re-executed) every build."""
    # names absent from this build's table of contents (e.g. a one-chapter preview) are skipped
    return [name for name in app.config.phasebook_always_read if name in env.found_docs]


def read_last(app: Sphinx, env: Any, docnames: list[str]) -> None:
    """Reorder (in place) the documents about to be read: the always-read pages go last."""
    docnames.sort(key=lambda name: name in app.config.phasebook_always_read)


def executed_notebook(app: Sphinx, pagename: str) -> tuple[nbformat.NotebookNode, dict] | None:
    """The executed notebook of ``pagename`` (JSON text), or ``None`` when the page is no notebook.

    myst-nb writes ``_build/jupyter_execute/<page>.ipynb`` for every notebook page, but when the page
    came from the execution cache that file lacks the outputs (myst-nb 1.4 writes the notebook it
    read, not the one merged with the cache).  Then the outputs are merged from the cache here.
    Returns the notebook and its glued values: myst-nb moves those out of the notebook it writes, into
    ``<page>.glue.json``.
    """
    if pagename not in app.env.all_docs or not app.env.metadata.get(pagename, {}).get("kernelspec"):
        return None
    path = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not path.is_file():
        return None
    notebook = nbformat.read(path, as_version=4)
    has_outputs = any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    if not has_outputs:
        from jupyter_cache import get_cache

        with suppress(KeyError):
            _, notebook = get_cache(app.env.mystnb_config.execution_cache_path).merge_match_into_notebook(notebook)
    glue_file = path.with_suffix(".glue.json")
    glued = json.loads(glue_file.read_text()) if glue_file.is_file() else {}
    return notebook, glued


def offer_executed_notebook(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Write the executed notebook into ``_sources`` and list it in the theme's download menu.

    sphinx-book-theme adds a ``.ipynb`` entry to its download menu when ``ipynb_source`` is in the
    page context (it sets it itself only when a Binder/JupyterHub launch button is configured).
    """
    executed = executed_notebook(app, pagename)
    if executed is None:
        return
    notebook, glued = executed
    try:
        notebook = standalone.convert_for_book(notebook, Path(pagename).name, Path(app.srcdir), glued=glued)
    except standalone.MystLeftOver as exc:
        logger.warning(f"phasebook: the downloadable notebook of {pagename} keeps MyST-only syntax: {exc}",
                       location=pagename)
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(nbformat.writes(notebook), encoding="utf-8")
    context["ipynb_source"] = f"{pagename}.ipynb"


def mathjax_source() -> Path:
    """Where the pinned MathJax 3 distribution is installed."""
    try:
        distribution = metadata.distribution(MATHJAX_DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise ExtensionError(
            f"{MATHJAX_DISTRIBUTION} is not installed: run `make book` (it installs requirements.txt)"
        ) from exc
    folder = Path(distribution.locate_file(MATHJAX_FOLDER))
    if not (folder / "tex-mml-chtml.js").is_file():
        raise ExtensionError(f"MathJax not found in {folder}")
    return folder


def check_mathjax_path(app: Sphinx, config: Any) -> None:
    """The book loads MathJax from ``_static/mathjax``: fail early if _config.yml says otherwise."""
    expected_prefix = f"{MATHJAX_TARGET}/"
    if not str(config.mathjax_path).startswith(expected_prefix):
        raise ExtensionError(
            f"mathjax_path must point into _static/{MATHJAX_TARGET}/ (offline MathJax), got {config.mathjax_path!r}"
        )
    mathjax_source()


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy MathJax into the HTML output (once; it is 24 MB and does not change)."""
    if exception is not None or app.builder.format != "html":
        return
    source = mathjax_source()
    target = Path(app.outdir) / "_static" / MATHJAX_TARGET
    stamp = target / ".source"
    if stamp.is_file() and stamp.read_text() == str(source):
        return
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    stamp.write_text(str(source))
    logger.info(f"phasebook: MathJax copied to {target}")


RAW_TEX = re.compile(r"\\[A-Za-z]+|\^|_\{")


def section_title(doctree: nodes.document, node_id: str) -> nodes.title | None:
    """The title of the section with id ``node_id`` in ``doctree``."""
    for section in doctree.findall(nodes.section):
        if node_id in section["ids"] and section.children and isinstance(section[0], nodes.title):
            return section[0]
    return None


def typeset_link_titles(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Give links whose text is a section title with mathematics that title's nodes (math typeset)."""
    for reference in list(doctree.findall(nodes.reference)):
        text = reference.astext()
        if not RAW_TEX.search(text):
            continue
        if reference.get("refid"):
            target_doc, node_id = docname, reference["refid"]
        elif "#" in reference.get("refuri", ""):
            uri, node_id = reference["refuri"].split("#", 1)
            target_doc = next((name for name in app.env.found_docs
                               if app.builder.get_relative_uri(docname, name) == uri), None)
            if target_doc is None:
                continue
        else:
            continue
        tree = doctree if target_doc == docname else app.env.get_doctree(target_doc)
        title = section_title(tree, node_id)
        if title is None or not list(title.findall(nodes.math)) or title.astext() != text:
            continue
        inline = nodes.inline("", "", *[copy.deepcopy(child) for child in title.children], classes=["std", "std-ref"])
        reference.children = []
        reference += inline


def mark_glued_sentences(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Mark paragraphs that are one glued sentence (``{glue:text}`` of a computed sentence alone in
    its paragraph) so that the stylesheet sets them as prose, not in the bold of a glued number."""
    for paragraph in doctree.findall(nodes.paragraph):
        if len(paragraph.children) != 1 or not isinstance(paragraph[0], nodes.inline):
            continue
        text = paragraph.astext().strip()
        if "pasted-text" in paragraph[0].get("classes", []) and " " in text and text.endswith("."):
            paragraph["classes"].append("glued-sentence")


def default_colour_mode(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Start in the reader's system colour mode (light or dark) unless _config.yml says otherwise."""
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Write each script of the page once (same file or same inline body and attributes)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # an inline script is registered once with filename None and once with "" (Sphinx 7.4)
        filename = str(getattr(script, "filename", script) or "")
        attributes = getattr(script, "attributes", {}) or {}
        key = (filename, tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("phasebook_always_read", [], "env", [list])
    app.connect("config-inited", check_mathjax_path)
    app.connect("html-page-context", default_colour_mode)
    app.connect("html-page-context", drop_duplicate_scripts)
    app.connect("env-get-outdated", always_read)
    app.connect("env-before-read-docs", read_last)
    # before sphinx-book-theme's add_header_buttons (priority 501) builds the download menu
    app.connect("html-page-context", offer_executed_notebook, priority=500)
    app.connect("build-finished", copy_mathjax)
    app.connect("doctree-resolved", typeset_link_titles)
    app.connect("doctree-resolved", mark_glued_sentences)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
