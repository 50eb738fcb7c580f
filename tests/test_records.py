"""Tests of phaselab.records and tools/scale_record.py: records of chapters run at a scale."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phaselab import ledger, records

REPO = Path(__file__).resolve().parents[1]

TINY_CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Tiny

```{code-cell} ipython3
from myst_nb import glue
from phaselab import config, ledger as ledger_module

size = config.by_scale(10, 1000)
glue("tiny-size", size, display=False)
book = ledger_module.Ledger("tiny", ["wang2026phase"])
book.check("The size is at most 100", "at most 100", str(size), size <= 100, "exact", "sec-tiny")
book.check("A check that always holds", "yes", "yes", True, "by hand", "sec-tiny")
book.save()
```
"""


@pytest.fixture
def tiny_book(tmp_path: Path) -> Path:
    """A book checkout with one chapter, its bibliography and a copy of phaselab, under git."""
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "tiny.md").write_text(TINY_CHAPTER)
    shutil.copy(REPO / "book" / "references.bib", tmp_path / "book")
    shutil.copytree(REPO / "lib" / "phaselab", tmp_path / "lib" / "phaselab", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/tiny\n")
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"]):
        subprocess.run(["git", "-C", str(tmp_path), *command], check=True)
    return tmp_path


def run_tool(root: Path, scale: str) -> dict:
    out = subprocess.run([sys.executable, str(REPO / "tools" / "scale_record.py"), "--root", str(root), "--scale", scale,
                          "tiny"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_tool_records_the_run_at_each_scale_with_provenance(tiny_book: Path):
    for scale in ("default", "paper"):
        summary = run_tool(tiny_book, scale)
        assert summary["rows"] == 2 and summary["wall_seconds"] > 0 and summary["peak_memory_mib"] > 10
    loaded = {scale: records.load_records(records.records_directory(scale, tiny_book))["tiny"] for scale in ("default", "paper")}
    default, paper = loaded["default"], loaded["paper"]
    assert default.numbers["tiny-size"] == "10" and paper.numbers["tiny-size"] == "1000"
    assert paper.scale == "paper" and len(paper.commit) == 40 and not paper.uncommitted_changes
    assert paper.phaselab_hash == records.phaselab_hash(tiny_book, "tiny")
    assert paper.device.startswith(("CPU", "GPU"))
    # the verdict that changes with the scale is flagged, the one that does not is not
    pairs = records.compare_scales(default.ledger, paper.ledger)
    assert [pair.changed for pair in pairs] == [True, False]
    assert pairs[0].default.verdict == ledger.REPRODUCED and pairs[0].other.verdict == ledger.DOES_NOT_REPRODUCE
    shown = records.scales_html(pairs, "tiny.html")
    assert shown.count("verdict changes with the scale") == 1 and 'href="tiny.html#sec-tiny"' in shown
    assert not records.staleness(paper, tiny_book).stale


def test_peak_memory_counts_the_kernel(tiny_book: Path):
    """The record's peak memory includes what the chapter's kernel used (here 400 MB, freed at once)."""
    chapter = tiny_book / "book" / "tiny.md"
    chapter.write_text(chapter.read_text().replace("book.save()", "import numpy as np\nnp.ones(50_000_000).sum()\nbook.save()"))
    assert run_tool(tiny_book, "default")["peak_memory_mib"] > 400


def test_staleness_names_what_changed_and_counts_commits(tiny_book: Path):
    run_tool(tiny_book, "default")
    record = records.load_records(records.records_directory("default", tiny_book))["tiny"]
    chapter = tiny_book / "book" / "tiny.md"
    chapter.write_text(chapter.read_text() + "\nMore text.\n")
    subprocess.run(["git", "-C", str(tiny_book), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "edit"], check=True)
    state = records.staleness(record, tiny_book)
    assert state.chapter_changed and not state.phaselab_changed and state.commits_since == 1
    assert state.describe() == "stale: the chapter changed (1 commit since)"


def test_chapter_record_gives_the_record_and_its_provenance(tiny_book: Path, monkeypatch):
    run_tool(tiny_book, "paper")
    monkeypatch.setenv("PHASEBOOK_ROOT", str(tiny_book))
    record, provenance = records.chapter_record("tiny")
    assert record.numbers["tiny-size"] == "1000"
    assert provenance == f"run of {record.finished[:10]}, code current"
    assert records.chapter_record("tiny", "default") is None  # no record at that scale
    monkeypatch.setenv("PHASEBOOK_ROOT", str(tiny_book / "nowhere"))
    assert records.chapter_record("tiny") is None


def test_chapter_modules_follow_imports_through_the_library():
    modules = records.chapter_modules(REPO, "l2_transitions")
    assert {"ensemble", "linear_nets", "ziyin_ueda", "config", "validation", "__init__"} <= set(modules)
    assert "dmft" not in modules and "two_valley" not in modules


def test_compare_scales_lines_up_rows_by_claim_text():
    a = ledger.Ledger("x", ["wang2026phase"])
    b = ledger.Ledger("x", ["wang2026phase"])
    a.check("only at the default scale", "p", "o", True, "r", "s")
    a.check("at both", "p", "o", True, "r", "s")
    b.check("at both", "p", "o", False, "r", "s")
    b.check("only at paper scale", "p", "o", True, "r", "s")
    pairs = records.compare_scales(a, b)
    assert [pair.claim.claim for pair in pairs] == ["only at the default scale", "at both", "only at paper scale"]
    assert [pair.changed for pair in pairs] == [False, True, False]
    assert pairs[0].other is None and pairs[2].default is None
    assert records.scales_html(pairs, "x.html").count("not recorded") == 2


def test_bad_arguments_are_named(tmp_path: Path):
    with pytest.raises(ValueError, match="scale must be one of"):
        records.records_directory("huge", tmp_path)
    with pytest.raises(ValueError, match="stem must name a chapter"):
        records.chapter_source(tmp_path, "missing")
    with pytest.raises(ValueError, match="record format"):
        records.ScaleRecord.from_json('{"format": 0}')
