"""Run chapters at a scale and write one record per chapter, with provenance (``make paper``).

Each chapter is executed in its own process (a fresh kernel) with ``PHASEBOOK_SCALE`` set, from
the ``book/`` folder as the build does.  The record (:class:`phaselab.records.ScaleRecord`) holds
the chapter's claims ledger, every number it glued, the commit, hashes of ``lib/phaselab`` and of
the chapter, the device, the wall time and the peak resident memory of the kernel.

Usage: python tools/scale_record.py [--scale paper] [--output DIR] [--timeout SECONDS] [--root DIR] [STEM ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

from phaselab import config, records, report
from phaselab.ledger import load_ledgers

BOOK_ROOT = Path(__file__).resolve().parents[1]


# Run in the kernel after the chapter: its own peak resident memory and that of any process it
# waited for, in KiB on Linux.
KERNEL_PEAK = ("import resource\nprint(max(resource.getrusage(who).ru_maxrss "
               "for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))")


def execute(source: Path, executed: Path, timeout: int) -> None:
    """Execute a MyST chapter in a fresh kernel from its folder; save the executed notebook, and
    the peak resident memory (MiB) of the kernel or of this process, whichever is larger, next to it.

    The kernel reports its own peak from a last cell (not saved): once the kernel has shut down,
    this process's ``RUSAGE_CHILDREN`` counts it only if it was reaped in time, which it may not be
    (a Chapter 2 record read 0.9 GiB where the kernel had used 8 GiB)."""
    notebook = jupytext.read(source)
    notebook.cells.append(nbformat.v4.new_code_cell(KERNEL_PEAK))
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    kernel_kib = int(notebook.cells.pop()["outputs"][0]["text"])
    nbformat.write(notebook, executed)
    peak_kib = max(kernel_kib, *(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))
    executed.with_suffix(".memory").write_text(str(peak_kib / 1024))


def record_chapter(root: Path, stem: str, scale: str, output: Path, timeout: int) -> records.ScaleRecord:
    """Run chapter ``stem`` of the book at ``root`` at ``scale`` in a child process and write its
    record into ``output``."""
    source = records.chapter_source(root, stem)
    commit, changed = records.git_commit(root, stem)
    hashes = records.phaselab_hash(root, stem), records.chapter_hash(root, stem)
    with tempfile.TemporaryDirectory() as scratch:
        ledger_dir, executed = Path(scratch) / "ledgers", Path(scratch) / f"{stem}.ipynb"
        env = {**os.environ, "PHASEBOOK_SCALE": scale, "PHASEBOOK_LEDGER_DIR": str(ledger_dir),
               "PHASEBOOK_ROOT": str(root)}
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--execute-only", str(source), str(executed), str(timeout)],
                       env=env, check=True)
        wall = time.perf_counter() - start
        peak_mib = float(executed.with_suffix(".memory").read_text())
        ledgers = {ledger.chapter: ledger for ledger in load_ledgers(ledger_dir)}
        if stem not in ledgers:
            raise SystemExit(f"{stem} saved no claims ledger (does its last cell call ledger.save()?)")
        numbers = report.glued_numbers(nbformat.read(executed, as_version=4))
    record = records.ScaleRecord(
        chapter=stem, scale=scale, commit=commit, uncommitted_changes=changed, phaselab_hash=hashes[0],
        chapter_hash=hashes[1], device=records.device_description(), wall_seconds=round(wall, 1),
        peak_memory_mib=round(peak_mib, 1), finished=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        ledger=ledgers[stem], numbers=numbers)
    records.save_record(record, output)
    return record


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--execute-only":
        execute(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stems", nargs="*", help="chapter stems, book/<stem>.md (default: the Chapters part of _toc.yml)")
    parser.add_argument("--scale", default="paper", choices=("default", "paper"))
    parser.add_argument("--output", type=Path, help="default: book/records/<scale>")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per cell")
    parser.add_argument("--root", type=Path, default=BOOK_ROOT, help="the book's checkout (default: this one)")
    args = parser.parse_args()
    output = args.output or records.records_directory(args.scale, args.root)
    stems = args.stems or [Path(docname).name for docname in report.toc_part("Chapters", args.root / "_toc.yml")]
    for stem in stems:
        record = record_chapter(args.root, stem, args.scale, output, args.timeout)
        print(json.dumps({"chapter": stem, "wall_seconds": record.wall_seconds,
                          "peak_memory_mib": record.peak_memory_mib, "rows": len(record.ledger.claims)}))


if __name__ == "__main__":
    main()
