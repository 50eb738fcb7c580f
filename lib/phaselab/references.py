"""The book's bibliography as the single source of citation text.

``book/references.bib`` is read once; :func:`cite` gives the short author-year form the book's
pages show ("Ziyin and Ueda (2023)", "Yang et al. (2026)"), :func:`work` the whole entry, with its
arXiv id or DOI.  Ledgers name their papers by bibliography key and take every citation string from here,
so a year or an author order is typed once, in the ``.bib`` file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from phaselab import config

PACKAGE_CHECKOUT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Work:
    """One bibliography entry: its key, authors' last names, year, title and identifier."""

    key: str
    last_names: tuple[str, ...]
    year: str
    title: str
    identifier: str

    @property
    def authors(self) -> str:
        """'Ziyin and Ueda', 'Yang et al.'."""
        names = self.last_names
        if len(names) == 1:
            return names[0]
        if len(names) == 2:
            return f"{names[0]} and {names[1]}"
        return f"{names[0]} et al."

    @property
    def citation(self) -> str:
        """'Ziyin and Ueda (2023)'."""
        return f"{self.authors} ({self.year})"


def bibliography_path() -> Path:
    """``book/references.bib`` of the book being built (else of the checkout phaselab lives in)."""
    for root in (config.book_root(), PACKAGE_CHECKOUT):
        if root is not None and (root / "book" / "references.bib").is_file():
            return root / "book" / "references.bib"
    raise FileNotFoundError("book/references.bib not found: run from a checkout of the book or set PHASEBOOK_ROOT")


@functools.cache
def works(path: Path) -> dict[str, Work]:
    """Every entry of the bibliography file at ``path``, by key."""
    from pybtex.database import parse_file

    entries = {}
    for key, entry in parse_file(str(path), bib_format="bibtex").entries.items():
        fields = entry.fields
        last_names = tuple(" ".join(person.last_names).replace("{", "").replace("}", "") for person in entry.persons["author"])
        if fields.get("eprint"):
            identifier = f"arXiv:{fields['eprint']}"
        elif fields.get("doi"):
            identifier = f"doi:{fields['doi']}"
        else:
            identifier = ""
        title = str(fields.get("title", "")).replace("{", "").replace("}", "")
        entries[key] = Work(key, last_names, str(fields.get("year", "")), title, identifier)
    return entries


def work(key: str) -> Work:
    """The bibliography entry with this key (``ValueError`` naming the known keys otherwise)."""
    entries = works(bibliography_path())
    if key not in entries:
        raise ValueError(f"key must be a key of {bibliography_path().name}: one of {sorted(entries)}, got {key!r}")
    return entries[key]


def cite(key: str) -> str:
    """The author-year citation of ``key``: 'Ziyin and Ueda (2023)'."""
    return work(key).citation
