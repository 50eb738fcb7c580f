"""Records of chapters run at a given scale, with their provenance, and how they compare with the build.

``make paper`` executes every chapter at ``PHASEBOOK_SCALE=paper`` (``tools/scale_record.py``) and
writes one JSON record per chapter into ``book/records/paper/``, a folder under version control:

* the chapter's claims ledger as it ran, and every number it glued into its text;
* the provenance: the commit, hashes of the ``phaselab`` modules the chapter runs and of its source, the device,
  the wall time and the peak memory of the run, and when it finished.

The reproducibility page reads these records next to the ledgers of the build (the default scale),
claim by claim (:func:`compare_scales`), and marks records whose code has changed since they were
made (:func:`staleness`).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from phaselab import config
from phaselab.ledger import Claim, Ledger, math_html, verdict_badge

RECORD_FORMAT = 1


@dataclass(frozen=True)
class ScaleRecord:
    """One chapter's run at one scale (see the module docstring for the fields' meaning)."""

    chapter: str
    scale: str
    commit: str
    uncommitted_changes: bool
    phaselab_hash: str
    chapter_hash: str
    device: str
    wall_seconds: float
    peak_memory_mib: float
    finished: str
    ledger: Ledger
    numbers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        payload = {key: value for key, value in asdict(self).items() if key != "ledger"}
        payload["format"] = RECORD_FORMAT
        payload["ledger"] = {"papers": list(self.ledger.papers), "claims": [asdict(c) for c in self.ledger.claims]}
        return json.dumps(payload, indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ScaleRecord:
        data = json.loads(text)
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"record format must be {RECORD_FORMAT}, got {data.get('format')!r}")
        ledger_data = data.pop("ledger")
        data.pop("format")
        ledger = Ledger(data["chapter"], tuple(ledger_data["papers"]), [Claim(**c) for c in ledger_data["claims"]])
        return cls(ledger=ledger, **data)


def chapter_modules(root: Path, stem: str) -> list[str]:
    """The ``phaselab`` modules chapter ``stem`` runs: those its code imports, and theirs in turn."""
    package = Path(root) / "lib" / "phaselab"
    pending = _phaselab_imports(chapter_source(root, stem).read_text(), package) | {"__init__"}
    found: set[str] = set()
    while pending:
        name = pending.pop()
        found.add(name)
        pending |= _phaselab_imports((package / f"{name}.py").read_text(), package) - found
    return sorted(found)


def phaselab_hash(root: Path, stem: str) -> str:
    """SHA-256 (first 16 hex digits) of the :func:`chapter_modules` of chapter ``stem``, names and
    contents: it changes exactly when code the chapter runs changes."""
    digest = hashlib.sha256()
    for name in chapter_modules(root, stem):
        digest.update(name.encode() + b"\0" + (Path(root) / "lib" / "phaselab" / f"{name}.py").read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _phaselab_imports(source: str, package: Path) -> set[str]:
    """Names of the modules of ``package`` that ``source`` imports (``from phaselab import x``,
    ``import phaselab.x``, ``from phaselab.x import y``); the source may be a MyST chapter."""
    names = set()
    for match in re.finditer(r"^\s*from\s+phaselab\s+import\s+\(?([^)\n]*(?:\n[^)\n]*)*?)\)?\s*$", source, re.M):
        names |= {part.split(" as ")[0].strip() for part in match.group(1).replace("\n", ",").split(",")}
    names |= set(re.findall(r"^\s*(?:from|import)\s+phaselab\.(\w+)", source, re.M))
    return {name for name in names if name and (package / f"{name}.py").is_file()}


def chapter_hash(root: Path, stem: str) -> str:
    """SHA-256 (first 16 hex digits) of the chapter's source ``book/<stem>.md``."""
    return hashlib.sha256(chapter_source(root, stem).read_bytes()).hexdigest()[:16]


def chapter_source(root: Path, stem: str) -> Path:
    """``book/<stem>.md`` of the book at ``root``; ``ValueError`` when there is no such chapter."""
    path = Path(root) / "book" / f"{stem}.md"
    if not path.is_file():
        raise ValueError(f"stem must name a chapter file book/<stem>.md under {root}, got {stem!r}")
    return path


def device_description(device: str | torch.device | None = None) -> str:
    """The machine a run used: the GPU's name, or the CPU model and its number of cores."""
    device = config.resolve_device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"CPU {model}, {os.cpu_count()} cores"


def git_commit(root: Path, stem: str) -> tuple[str, bool]:
    """The checked-out commit of ``root`` and whether chapter ``stem`` or the ``phaselab`` modules it
    runs differ from it (``('unknown', True)`` outside a git checkout)."""
    paths = [f"book/{stem}.md", *(f"lib/phaselab/{name}.py" for name in chapter_modules(root, stem))]
    try:
        commit = _git(root, "rev-parse", "HEAD")
        changed = _git(root, "status", "--porcelain", "--", *paths)
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit, bool(changed)


@dataclass(frozen=True)
class Staleness:
    """How a record's code differs from the checkout's: which hashes changed, and by how many
    commits touching the library or the chapter (``None`` when git cannot tell)."""

    phaselab_changed: bool
    chapter_changed: bool
    commits_since: int | None

    @property
    def stale(self) -> bool:
        return self.phaselab_changed or self.chapter_changed

    def describe(self) -> str:
        if not self.stale:
            return "current"
        parts = [name for name, changed in (("phaselab", self.phaselab_changed), ("the chapter", self.chapter_changed)) if changed]
        text = f"stale: {' and '.join(parts)} changed"
        if self.commits_since == 0:
            text += " (not yet committed)"
        elif self.commits_since is not None:
            text += f" ({self.commits_since} commit{'s' if self.commits_since != 1 else ''} since)"
        return text


def staleness(record: ScaleRecord, root: Path) -> Staleness:
    """Compare a record's hashes with the checkout at ``root``, and count the commits since the
    record's commit that changed ``lib/phaselab`` or the chapter."""
    phaselab_changed = record.phaselab_hash != phaselab_hash(root, record.chapter)
    chapter_changed = record.chapter_hash != chapter_hash(root, record.chapter)
    commits = None
    if record.commit != "unknown":
        try:
            modules = [f"lib/phaselab/{name}.py" for name in chapter_modules(root, record.chapter)]
            out = _git(root, "rev-list", "--count", f"{record.commit}..HEAD", "--", *modules, f"book/{record.chapter}.md")
            commits = int(out)
        except (OSError, subprocess.CalledProcessError, ValueError):
            commits = None
    return Staleness(phaselab_changed, chapter_changed, commits)


def save_record(record: ScaleRecord, directory: Path) -> Path:
    """Write ``<directory>/<chapter>.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record.chapter}.json"
    path.write_text(record.to_json() + "\n")
    return path


def load_records(directory: Path) -> dict[str, ScaleRecord]:
    """Every record in ``directory``, by chapter (an empty mapping when the folder is absent)."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    records = (ScaleRecord.from_json(path.read_text()) for path in sorted(directory.glob("*.json")))
    return {record.chapter: record for record in records}


def records_directory(scale: str = "paper", root: Path | None = None) -> Path:
    """``book/records/<scale>`` of the book at ``root`` (default: :func:`phaselab.config.book_root`)."""
    if scale not in config.SCALES:
        raise ValueError(f"scale must be one of {config.SCALES}, got {scale!r}")
    root = Path(root) if root is not None else config.book_root()
    if root is None:
        raise ValueError("root must be given outside a checkout of the book (or set PHASEBOOK_ROOT)")
    return root / "book" / "records" / scale


def chapter_record(stem: str, scale: str = "paper") -> tuple[ScaleRecord, str] | None:
    """Chapter ``stem``'s committed record at ``scale`` and where it comes from, e.g. ``"run of
    2026-12-01, code current"``, for a chapter to quote what its paper-scale run gave.

    ``None`` outside a checkout of the book (a downloaded notebook run elsewhere) or without a record:
    the chapter then says so, and its default-scale results do not depend on it.
    """
    root = config.book_root()
    if root is None:
        return None
    record = load_records(records_directory(scale, root)).get(stem)
    if record is None:
        return None
    return record, f"run of {record.finished[:10]}, code {staleness(record, root).describe()}"


@dataclass(frozen=True)
class ScalePair:
    """One claim of a chapter at the default scale and at another scale (``None``: absent there)."""

    default: Claim | None
    other: Claim | None

    @property
    def claim(self) -> Claim:
        return self.default or self.other

    @property
    def changed(self) -> bool:
        """Whether both scales have the claim and its verdict differs between them."""
        return bool(self.default and self.other and self.default.verdict != self.other.verdict)


def compare_scales(default: Ledger, other: Ledger) -> list[ScalePair]:
    """The claims of one chapter at two scales, row by row.

    Rows are matched by their claim text (the first unmatched row with the same text), so a ledger
    that gained or lost rows between the runs still lines up; a row present at one scale only is
    paired with ``None``.
    """
    remaining = list(other.claims)
    pairs = []
    for claim in default.claims:
        match = next((i for i, candidate in enumerate(remaining) if candidate.claim == claim.claim), None)
        pairs.append(ScalePair(claim, remaining.pop(match) if match is not None else None))
    return pairs + [ScalePair(None, partner) for partner in remaining]


def scales_html(pairs: list[ScalePair], page: str, other_name: str = "paper scale") -> str:
    """An HTML table of :func:`compare_scales`: the claim with a link to its evidence on ``page``,
    then our value and verdict at each scale; rows whose verdict changes with the scale are marked."""
    cell = 'style="text-align:left;vertical-align:top;padding:0.3em 0.4em;overflow-wrap:anywhere"'
    rows = []
    for number, pair in enumerate(pairs, start=1):
        claim = pair.claim
        evidence = f'<a href="{html.escape(page)}#{html.escape(claim.section)}">evidence</a>'
        sides = [(f"{math_html(c.our_value)}<br>{verdict_badge(c)}" if c else "not recorded") for c in (pair.default, pair.other)]
        mark = "<br><strong>verdict changes with the scale</strong>" if pair.changed else ""
        rows.append(f"<tr><td {cell}>{number}</td><td {cell}>{math_html(claim.claim)} ({evidence}){mark}</td>"
                    f"<td {cell}>{sides[0]}</td><td {cell}>{sides[1]}</td></tr>")
    widths = (5, 41, 27, 27)
    columns = "".join(f'<col style="width:{w}%">' for w in widths)
    head = "".join(f"<th {cell}>{name}</th>" for name in ("#", "Claim", "Default scale (this build)", other_name.capitalize()))
    return (f'<table class="phasebook-ledger" style="table-layout:fixed;width:100%;font-size:0.85em;'
            f'border-collapse:collapse"><colgroup>{columns}</colgroup><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()
