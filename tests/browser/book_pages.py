"""Where the built book is, and which pages it has (from _toc.yml)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"


def toc_docnames() -> list[str]:
    """Every page of ``_toc.yml``: the root, then each file in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]]
    for part in toc.get("parts", []):
        names += [entry["file"] for entry in part.get("chapters", [])]
    names += [entry["file"] for entry in toc.get("chapters", [])]
    return names


def page_source(docname: str) -> str:
    """The MyST source of a page."""
    return (ROOT / f"{docname}.md").read_text()


def is_notebook(docname: str) -> bool:
    """Pages that are jupytext notebooks (front matter with a kernelspec) and run code."""
    text = page_source(docname)
    return text.startswith("---") and "kernelspec:" in text.split("---", 2)[1] and "```{code-cell}" in text
