"""Claims ledgers: each chapter ends with a table of what its papers claim and what we find.

A :class:`Ledger` collects :class:`Claim` rows as a chapter runs.  Every row records its **kind**,
one of the verdicts of the book's style guide, and the kind is derived, never typed:

* a paper's numerical claim goes through :meth:`Ledger.compare` (reproduced when
  ``|ours - paper| <= tolerance``), a qualitative one through :meth:`Ledger.check` (reproduced
  when the test the notebook computes holds).  When it fails, the row takes the kind the chapter
  names in ``if_not``: ``DOES_NOT_REPRODUCE`` (the stated protocol, run faithfully, gives
  something else; the default) or ``CONTRADICTED`` (the paper's number disagrees with its own
  formulas);
* a claim whose setup the source leaves open goes through :meth:`Ledger.readings`: the chapter runs
  each plausible reading; reproduced when every reading agrees, ``DEPENDS`` when some do and
  some do not, ``if_not`` when none does;
* the book's own theory against its own simulation goes through ``compare``/``check`` with
  ``ours=True``: kind ``PREDICTION``, and ``holds`` says whether it passed.

Rows that rest on the same finding share a ``finding`` key and count once in the tallies.  Papers
are named by their key in ``book/references.bib`` (:mod:`phaselab.references`), never by typed
text.  :meth:`Ledger.show` displays the ledger as an HTML table (mathematics typeset, the verdict
coloured, the reason for the tolerance folded away, a link to the evidence) that reads the same in
the book and in a downloaded notebook; ``Ledger.save`` writes the rows as JSON under
``_build/ledgers/`` for the reproducibility page.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from phaselab import config, references

REPRODUCED = "reproduced"
CONTRADICTED = "contradicted by its own equations"
DOES_NOT_REPRODUCE = "does not reproduce"
DEPENDS = "depends on unstated choices"
PREDICTION = "our prediction"
KINDS = (REPRODUCED, CONTRADICTED, DOES_NOT_REPRODUCE, DEPENDS, PREDICTION)
PAPER_KINDS = KINDS[:-1]
FAILURE_KINDS = (DOES_NOT_REPRODUCE, CONTRADICTED, DEPENDS)

# What each kind tells the reader, in one sentence (the reproducibility page shows these).
KIND_MEANING = {
    REPRODUCED: "The paper's claim holds under its stated setup, within a tolerance derived from the statistics.",
    CONTRADICTED: "The paper's number disagrees with what its own formulas give; no simulation is needed to see it.",
    DOES_NOT_REPRODUCE: "The protocol the paper states, run faithfully, gives something else.",
    DEPENDS: "The source leaves out a choice that matters; the chapter runs the plausible readings, and some "
             "agree with the paper while others do not.",
    PREDICTION: "Not the paper's claim: the book's own theory, judged against its own simulation by the same "
                "statistical test the book applies to the papers.",
}
# Background of each verdict badge (light tints of the Okabe-Ito colours; black text on all).
KIND_COLOURS = {
    REPRODUCED: "#cfe3f3",
    CONTRADICTED: "#f6d3c2",
    DOES_NOT_REPRODUCE: "#fbe6bf",
    DEPENDS: "#efd9e7",
    PREDICTION: "#cdeee3",
}
PREDICTION_FAILED_COLOUR = "#f6d3c2"


@dataclass(frozen=True)
class Claim:
    """One row of a claims ledger.

    ``claim`` may hold inline mathematics between ``$`` signs.  ``paper`` is the bibliography key of
    the work the claim is about; ``section`` the MyST label of the section that shows the evidence;
    ``holds`` whether the check passed; ``finding`` the key of the finding the row rests on.
    """

    claim: str
    paper: str
    paper_value: str
    our_value: str
    tolerance: str
    reason: str
    kind: str
    holds: bool
    section: str
    finding: str

    @property
    def verdict(self) -> str:
        """The verdict as shown: the kind, and for our predictions whether they held."""
        if self.kind == PREDICTION:
            return f"{PREDICTION}: {'holds' if self.holds else 'fails'}"
        return self.kind


def _format(value: float | str, digits: int) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.{digits}g}"


def _reading_tolerances(values: Mapping[str, float], tolerance: float | Mapping[str, float]) -> dict[str, float]:
    """One finite, non-negative tolerance per reading, from a number or a mapping by reading name."""
    if isinstance(tolerance, Mapping):
        if set(tolerance) != set(values):
            raise ValueError(f"tolerance must name exactly the readings {sorted(values)}, got {sorted(tolerance)}")
        tolerances = {name: float(tolerance[name]) for name in values}
    else:
        tolerances = {name: float(tolerance) for name in values}
    for name, value in tolerances.items():
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"tolerance for reading {name!r} must be finite and >= 0, got {value!r}")
    return tolerances


def _failure_kind(if_not: str) -> str:
    if if_not not in FAILURE_KINDS:
        raise ValueError(f"if_not must be one of {FAILURE_KINDS}, got {if_not!r}")
    return if_not


@dataclass
class Ledger:
    """The claims ledger of one chapter.

    ``chapter`` is the chapter's file stem; ``papers`` the bibliography keys of the works it checks
    (the first is the default ``paper`` of each row).
    """

    chapter: str
    papers: tuple[str, ...]
    claims: list[Claim] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.papers = tuple(self.papers)
        if not self.papers:
            raise ValueError("papers must name at least one bibliography key")
        for key in self.papers:
            references.work(key)

    @property
    def source(self) -> str:
        """The papers as citations: 'Ziyin and Ueda (2023); Ersoy and Wiesner (2026)'."""
        return "; ".join(references.cite(key) for key in self.papers)

    def compare(
        self,
        claim: str,
        paper_value: float,
        our_value: float,
        tolerance: float,
        reason: str,
        section: str,
        *,
        our_error: float | None = None,
        digits: int = 3,
        if_not: str = DOES_NOT_REPRODUCE,
        ours: bool = False,
        paper: str | None = None,
        finding: str | None = None,
    ) -> bool:
        """Record a numerical claim; it holds when ``|ours - paper| <= tolerance``.

        ``our_error`` (a standard error) is shown next to our value.  With ``ours=True`` the claim is
        the book's prediction (``paper_value`` is then the theory's value).  Returns whether it held.
        """
        measured_only = not config.statistics_checked()
        if not (math.isfinite(paper_value) and (math.isfinite(our_value) or measured_only)):
            raise ValueError("paper_value and our_value must be finite")
        if not (tolerance >= 0 and (math.isfinite(tolerance) or measured_only)):
            raise ValueError(f"tolerance must be finite and >= 0, got {tolerance!r}")
        holds = bool(abs(our_value - paper_value) <= tolerance)
        shown = _format(our_value, digits)
        if our_error is not None:
            shown += f" ± {_format(our_error, 2)}"
        failure = _failure_kind(if_not)
        kind = PREDICTION if ours else (REPRODUCED if holds else failure)
        self._add(claim, paper, _format(paper_value, digits), shown, f"± {_format(tolerance, 2)}", reason, kind,
                  holds, section, finding)
        return holds

    def check(
        self,
        claim: str,
        paper_value: str,
        our_value: str,
        holds: bool,
        reason: str,
        section: str,
        *,
        tolerance: str = "—",
        if_not: str = DOES_NOT_REPRODUCE,
        ours: bool = False,
        paper: str | None = None,
        finding: str | None = None,
    ) -> bool:
        """Record a qualitative claim whose truth ``holds`` the notebook has computed."""
        holds = bool(holds)
        failure = _failure_kind(if_not)
        kind = PREDICTION if ours else (REPRODUCED if holds else failure)
        self._add(claim, paper, paper_value, our_value, tolerance, reason, kind, holds, section, finding)
        return holds

    def readings(
        self,
        claim: str,
        paper_value: float,
        values: Mapping[str, float],
        tolerance: float | Mapping[str, float],
        reason: str,
        section: str,
        *,
        digits: int = 3,
        if_not: str = DOES_NOT_REPRODUCE,
        paper: str | None = None,
        finding: str | None = None,
    ) -> str:
        """Record a claim under every plausible reading of an underspecified source.

        ``values`` maps each reading's name to our value under it.  ``tolerance`` is one number for
        every reading or a mapping with one per reading (each reading's own statistical error).
        The kind is reproduced when all readings agree with the paper within their tolerance,
        ``DEPENDS`` when some do, ``if_not`` when none does.  Returns the kind.
        """
        failure = _failure_kind(if_not)
        if not values:
            raise ValueError("values must hold at least one reading")
        tolerances = _reading_tolerances(values, tolerance)
        agree = [name for name, value in values.items() if bool(abs(value - paper_value) <= tolerances[name])]
        if len(agree) == len(values):
            kind = REPRODUCED
        elif agree:
            kind = DEPENDS
        else:
            kind = failure
        low, high = min(values.values()), max(values.values())
        shown = f"{_format(low, digits)} to {_format(high, digits)} over {len(values)} readings"
        shown += f"; agreeing: {', '.join(agree)}" if agree else "; none agrees"
        smallest, largest = min(tolerances.values()), max(tolerances.values())
        band = f"± {_format(smallest, 2)}" if smallest == largest else \
            f"± {_format(smallest, 2)} to {_format(largest, 2)} (per reading)"
        self._add(claim, paper, _format(paper_value, digits), shown, band, reason, kind, bool(agree), section, finding)
        return kind

    def _add(self, claim: str, paper: str | None, paper_value: str, our_value: str, tolerance: str, reason: str,
             kind: str, holds: bool, section: str, finding: str | None) -> None:
        paper = paper if paper is not None else self.papers[0]
        if paper not in self.papers:
            raise ValueError(f"paper must be one of the ledger's papers {self.papers}, got {paper!r}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", section):
            raise ValueError(f"section must be a MyST label, got {section!r}")
        finding = finding if finding is not None else f"row-{len(self.claims) + 1}"
        self.claims.append(Claim(claim, paper, paper_value, our_value, tolerance, reason, kind, holds, section, finding))

    def table(self) -> pd.DataFrame:
        """The ledger as a data frame, one row per claim."""
        frame = pd.DataFrame([{**asdict(c), "verdict": c.verdict} for c in self.claims])
        frame.index = range(1, len(frame) + 1)
        return frame

    def show(self) -> None:
        """Display the ledger as a table (see :func:`ledger_html`)."""
        from IPython.display import HTML, display

        display(HTML(ledger_html(self.claims)))

    def tally(self) -> dict[str, int]:
        """How many findings of each kind (rows that share a finding count once)."""
        return tally(self.claims)

    def save(self, directory: str | os.PathLike | None = None) -> Path:
        """Write the ledger as JSON to ``directory`` (default: :func:`ledger_directory`)."""
        target = Path(directory) if directory is not None else ledger_directory()
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{self.chapter}.json"
        payload = {"chapter": self.chapter, "papers": list(self.papers), "claims": [asdict(c) for c in self.claims]}
        path.write_text(json.dumps(payload, indent=1))
        return path


def findings(claims: Sequence[Claim]) -> list[Claim]:
    """The first row of each finding, in order (a finding shared by several rows counts once)."""
    seen, unique = set(), []
    for claim in claims:
        if claim.finding not in seen:
            seen.add(claim.finding)
            unique.append(claim)
    return unique


def tally(claims: Sequence[Claim]) -> dict[str, int]:
    """Findings by kind; our predictions are split into ``'our prediction: holds'`` and ``': fails'``."""
    counts = {kind: 0 for kind in PAPER_KINDS}
    counts.update({f"{PREDICTION}: holds": 0, f"{PREDICTION}: fails": 0})
    for claim in findings(claims):
        counts[claim.verdict] += 1
    return counts


def math_html(text: str) -> str:
    """HTML of ``text`` with inline ``$...$`` mathematics left for MathJax (book and Jupyter alike)."""
    parts = re.split(r"(?<!\\)\$(.+?)(?<!\\)\$", " ".join(str(text).split()))
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(f'<span class="math notranslate nohighlight">\\({html.escape(part, quote=False)}\\)</span>')
        else:
            out.append(html.escape(part.replace("\\$", "$"), quote=False))
    return "".join(out)


def verdict_badge(claim: Claim) -> str:
    """The verdict as a coloured label."""
    colour = KIND_COLOURS[claim.kind]
    if claim.kind == PREDICTION and not claim.holds:
        colour = PREDICTION_FAILED_COLOUR
    return (f'<span class="phasebook-verdict" style="background:{colour};color:#000;padding:0.1em 0.4em;'
            f'border-radius:0.3em;white-space:normal;display:inline-block">{html.escape(claim.verdict)}</span>')


def ledger_html(claims: Sequence[Claim], *, pages: Sequence[str] | None = None,
                numbers: Sequence[int | str] | None = None) -> str:
    """An HTML table of ``claims``: number, claim with a link to its evidence, paper, ours, verdict.

    The tolerance and its reason fold away under the verdict.  ``pages`` are the pages the evidence
    links of the rows point to (default: this page); ``numbers`` what the first column shows
    (default 1, 2, ...).  Mathematics between ``$`` signs is typeset.
    """
    numbers = list(numbers) if numbers is not None else list(range(1, len(claims) + 1))
    pages = list(pages) if pages is not None else [""] * len(claims)
    if not (len(numbers) == len(pages) == len(claims)):
        raise ValueError(f"numbers and pages must give one entry per claim ({len(claims)})")
    cell = 'style="text-align:left;vertical-align:top;padding:0.3em 0.4em;overflow-wrap:anywhere"'
    rows = []
    for number, page, claim in zip(numbers, pages, claims):
        evidence = f'<a href="{html.escape(page)}#{html.escape(claim.section)}">evidence</a>'
        tolerance = (f"<details><summary>tolerance {math_html(claim.tolerance)}</summary>"
                     f"{math_html(claim.reason)}</details>")
        rows.append(
            f"<tr><td {cell}>{number}</td><td {cell}>{math_html(claim.claim)} ({evidence})</td>"
            f"<td {cell}>{math_html(claim.paper_value)}</td><td {cell}>{math_html(claim.our_value)}</td>"
            f"<td {cell}>{verdict_badge(claim)}{tolerance}</td></tr>"
        )
    widths = (5, 37, 17, 19, 22)
    columns = "".join(f'<col style="width:{w}%">' for w in widths)
    head = "".join(f"<th {cell}>{name}</th>" for name in ("#", "Claim", "Paper", "Ours", "Verdict"))
    return (f'<table class="phasebook-ledger" style="table-layout:fixed;width:100%;font-size:0.85em;'
            f'border-collapse:collapse"><colgroup>{columns}</colgroup><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def ledger_directory() -> Path:
    """Where ledgers are written: ``$PHASEBOOK_LEDGER_DIR``, else ``_build/ledgers`` of the book
    being built (:func:`phaselab.config.book_root`), else of the working directory."""
    override = os.environ.get("PHASEBOOK_LEDGER_DIR")
    if override:
        return Path(override)
    return (config.book_root() or Path.cwd()) / "_build" / "ledgers"


def load_ledgers(directory: str | os.PathLike | None = None) -> list[Ledger]:
    """Read every saved ledger from ``directory`` (default: :func:`ledger_directory`)."""
    source = Path(directory) if directory is not None else ledger_directory()
    ledgers = []
    for path in sorted(source.glob("*.json")):
        data = json.loads(path.read_text())
        ledgers.append(Ledger(data["chapter"], tuple(data["papers"]), [Claim(**c) for c in data["claims"]]))
    return ledgers
