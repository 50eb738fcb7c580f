"""Claims ledgers: each chapter ends with a table of what its paper claims and what we find.

A :class:`Ledger` collects :class:`Claim` rows as a chapter runs.  Numerical claims go through
:meth:`Ledger.compare`, which derives the verdict from the paper's value, ours and a stated
tolerance; qualitative claims go through :meth:`Ledger.check`, whose verdict follows from a
boolean test the notebook computes.  Verdicts are never typed by hand.

``Ledger.save`` writes the rows as JSON under ``_build/ledgers/`` so that the reproducibility page
can gather every chapter's ledger from the same objects.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
VERDICTS = (REPRODUCED, NOT_REPRODUCED)
# Percent of the page width each column of a displayed ledger gets (the row number takes 4 %).
COLUMN_SHARES = {"Claim": 22, "Paper": 10, "Ours": 18, "Tolerance": 13, "Why this tolerance": 19, "Verdict": 14}


@dataclass(frozen=True)
class Claim:
    """One row of a claims ledger.

    ``section`` is the MyST label of the chapter section that shows the evidence.
    """

    claim: str
    paper_value: str
    our_value: str
    tolerance: str
    reason: str
    verdict: str
    section: str


def _format(value: float | str, digits: int) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.{digits}g}"


@dataclass
class Ledger:
    """The claims ledger of one chapter (``chapter`` is the chapter's file stem)."""

    chapter: str
    source: str
    claims: list[Claim] = field(default_factory=list)

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
    ) -> bool:
        """Record a numerical claim; it is reproduced when ``|ours - paper| <= tolerance``.

        ``our_error`` (a standard error) is shown next to our value when given.  Returns whether
        the claim was reproduced.
        """
        if not (math.isfinite(paper_value) and math.isfinite(our_value)):
            raise ValueError("paper_value and our_value must be finite")
        if not (tolerance >= 0 and math.isfinite(tolerance)):
            raise ValueError(f"tolerance must be finite and >= 0, got {tolerance!r}")
        agrees = abs(our_value - paper_value) <= tolerance
        ours = _format(our_value, digits)
        if our_error is not None:
            ours += f" ± {_format(our_error, 2)}"
        self._add(claim, _format(paper_value, digits), ours, f"± {_format(tolerance, 2)}", reason, agrees, section)
        return agrees

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
    ) -> bool:
        """Record a qualitative claim whose truth ``holds`` the notebook has computed."""
        self._add(claim, paper_value, our_value, tolerance, reason, bool(holds), section)
        return bool(holds)

    def _add(self, claim: str, paper: str, ours: str, tol: str, reason: str, agrees: bool, section: str) -> None:
        verdict = REPRODUCED if agrees else NOT_REPRODUCED
        self.claims.append(Claim(claim, paper, ours, tol, reason, verdict, section))

    def table(self) -> pd.DataFrame:
        """The ledger as a table for display at the end of a chapter."""
        columns = ["claim", "paper_value", "our_value", "tolerance", "reason", "verdict"]
        frame = pd.DataFrame([asdict(c) for c in self.claims], columns=columns + ["section"])
        frame = frame[columns].rename(columns=dict(zip(columns, COLUMN_SHARES)))
        frame.index = range(1, len(frame) + 1)
        return frame

    def show(self) -> None:
        """Display :meth:`table` in a notebook: every cell in full (pandas would truncate long text),
        wrapped to the page width with fixed column shares, so the verdict column stays in view."""
        from IPython.display import HTML, display

        styles = [
            {"selector": "", "props": "table-layout: fixed; width: 100%; font-size: 0.85em;"},
            {"selector": "th.row_heading, th.blank", "props": "width: 4%;"},
            {"selector": "td, th", "props": "text-align: left; vertical-align: top; overflow-wrap: break-word;"},
        ]
        styles += [
            {"selector": f"th.col_heading.col{i}", "props": f"width: {share}%;"}
            for i, share in enumerate(COLUMN_SHARES.values())
        ]
        display(HTML(self.table().style.set_uuid(f"ledger-{self.chapter}").set_table_styles(styles).to_html()))

    def counts(self) -> dict[str, int]:
        """How many claims got each verdict."""
        return {v: sum(c.verdict == v for c in self.claims) for v in VERDICTS}

    def save(self, directory: str | os.PathLike | None = None) -> Path:
        """Write the ledger as JSON to ``directory`` (default: ``<repo>/_build/ledgers``)."""
        target = Path(directory) if directory is not None else ledger_directory()
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{self.chapter}.json"
        payload = {"chapter": self.chapter, "source": self.source, "claims": [asdict(c) for c in self.claims]}
        path.write_text(json.dumps(payload, indent=1))
        return path


def ledger_directory() -> Path:
    """Where ledgers are written: ``$PHASEBOOK_LEDGER_DIR`` or ``<repo>/_build/ledgers``."""
    override = os.environ.get("PHASEBOOK_LEDGER_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "_build" / "ledgers"


def load_ledgers(directory: str | os.PathLike | None = None) -> list[Ledger]:
    """Read every saved ledger from ``directory`` (default: :func:`ledger_directory`)."""
    source = Path(directory) if directory is not None else ledger_directory()
    ledgers = []
    for path in sorted(source.glob("*.json")):
        data = json.loads(path.read_text())
        ledgers.append(Ledger(data["chapter"], data["source"], [Claim(**c) for c in data["claims"]]))
    return ledgers
