"""Turn an executed chapter into an ordinary notebook that stands alone (JupyterLab, Colab).

A chapter is a MyST notebook: its markdown holds roles and directives (``{glue:text}``,
``{glue:figure}``, ``{cite}``, ``{eq}``, ``(label)=``, admonitions, exercises, proofs) that only
the book's build understands, and its figures are *glued*: stored in cell outputs under a private
MIME type that Jupyter does not display.  :func:`standalone_notebook` rewrites an executed chapter:

* every glued figure becomes an image output of the last code cell before its caption;
* glued numbers are written into the markdown as plain text, formatted as the page formats them;
* ``{glue:figure}`` becomes a numbered caption, ``{eq}``/``{numref}``/``{ref}`` become numbered
  links to anchors, ``(label)=`` an HTML anchor, labelled display math a ``\\tag``, citations
  author-year text, admonitions, exercises and proofs bold-titled blocks;
* MyST that it does not know is an error, so nothing MyST-only can slip through.

Numbers follow the book: chapter ``n`` of the ``Chapters`` part numbers its figures ``n.1, n.2``
and its equations ``(n.1), (n.2)`` in order of appearance.

The book's extension (:mod:`phasebook`) applies it to the notebook behind each download button;
run as a script it executes a chapter and writes the same notebook::

    .venv/bin/python _ext/standalone.py book/l2_transitions.md -o _build/notebooks/l2_transitions.ipynb
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

from phaselab.report import glued_values, page_title

ROLE = re.compile(r"\{(?P<role>[a-zA-Z][\w:-]*)\}`(?P<content>[^`]*)`")
LABEL_LINE = re.compile(r"^\((?P<label>[A-Za-z0-9][\w.:-]*)\)=\s*$")
FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}\s*(?P<argument>.*)$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):(?:\s+(?P<value>.*))?$")
LABELLED_MATH = re.compile(r"\$\$(?P<body>.+?)\$\$[ \t]*\((?P<label>[A-Za-z0-9][\w.:-]*)\)", re.DOTALL)
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
ADMONITIONS = {"admonition", "note", "tip", "warning", "important", "seealso", "attention", "caution", "hint",
               "dropdown", "topic", "epigraph"}
PROOF_TITLES = {"proposition": "Proposition", "theorem": "Theorem", "lemma": "Lemma", "corollary": "Corollary",
                "definition": "Definition", "remark": "Remark", "conjecture": "Conjecture", "example": "Example",
                "property": "Property", "observation": "Observation", "assumption": "Assumption",
                "criterion": "Criterion", "algorithm": "Algorithm", "axiom": "Axiom"}


class MystLeftOver(ValueError):
    """The markdown holds MyST that the conversion does not know."""


@dataclass
class Numbering:
    """Labels of one chapter and what they are called in the text."""

    chapter: int | None
    figures: dict[str, str] = field(default_factory=dict)
    equations: dict[str, str] = field(default_factory=dict)
    exercises: dict[str, str] = field(default_factory=dict)
    statements: dict[str, str] = field(default_factory=dict)  # prf:* labels -> "Proposition 2.1"
    sections: dict[str, str] = field(default_factory=dict)  # label -> heading text

    def number(self, count: int) -> str:
        return f"{self.chapter}.{count}" if self.chapter else str(count)


def collect_numbering(markdown_cells: list[str], chapter: int | None) -> Numbering:
    """Number figures, equations, exercises and statements of a chapter in order of appearance."""
    numbering = Numbering(chapter)
    statement_counts: dict[str, int] = {}
    text = "\n".join(markdown_cells)
    lines = text.splitlines()
    for index, line in enumerate(lines):
        label = LABEL_LINE.match(line)
        if label:
            heading = next((l for l in lines[index + 1:] if l.strip()), "")
            numbering.sections[label["label"]] = heading.lstrip("#").strip()
    events = []  # (position, kind, label, directive)
    for match in LABELLED_MATH.finditer(text):
        events.append((match.start(), "equation", match["label"], ""))
    for match in re.finditer(r"^(`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[^\n]*\n(?P<options>(?::[\w-]+:[^\n]*\n)*)", text, re.M):
        options = dict(re.findall(r"^:([\w-]+):\s*(.*)$", match["options"], re.M))
        name = match["name"]
        if name == "glue:figure" and "name" in options:
            events.append((match.start(), "figure", options["name"], name))
        elif name == "math" and "label" in options:
            events.append((match.start(), "equation", options["label"], name))
        elif name == "exercise":
            events.append((match.start(), "exercise", options.get("label", f"exercise-{match.start()}"), name))
        elif name.startswith("prf:") and name != "prf:proof":
            events.append((match.start(), "statement", options.get("label", f"{name}-{match.start()}"), name))
    counts = {"figure": 0, "equation": 0, "exercise": 0}
    for _, kind, label, directive in sorted(events):
        if kind == "statement":
            kind_name = directive.split(":", 1)[1]
            statement_counts[kind_name] = statement_counts.get(kind_name, 0) + 1
            title = PROOF_TITLES.get(kind_name, kind_name.capitalize())
            numbering.statements[label] = f"{title} {numbering.number(statement_counts[kind_name])}"
            continue
        counts[kind] += 1
        {"figure": numbering.figures, "equation": numbering.equations, "exercise": numbering.exercises}[kind][label] = (
            numbering.number(counts[kind]))
    return numbering


def format_glued(values: dict[str, dict], key_spec: str) -> str:
    """The text of ``{glue:text}`key:spec``` as the book shows it."""
    from myst_nb.core.variables import format_plain_text

    key, spec = key_spec.rsplit(":", 1) if ":" in key_spec else (key_spec, "")
    if key not in values:
        raise MystLeftOver(f"glue:text refers to a key that no cell glued: {key!r}")
    return format_plain_text(values[key]["data"].get("text/plain", ""), spec)


@dataclass
class Context:
    """What the conversion of one notebook needs besides its cells."""

    numbering: Numbering
    glued: dict[str, dict]
    citations: dict[str, tuple[str, str]]  # bib key -> (authors, year)
    titles: dict[str, str]  # page stem -> title


def cite_text(context: Context, keys: str, role: str) -> str:
    works = []
    for key in (k.strip() for k in keys.split(",")):
        if key not in context.citations:
            raise MystLeftOver(f"citation key not in the bibliography: {key!r}")
        works.append(context.citations[key])
    if role == "cite:p":
        return "(" + "; ".join(f"{authors}, {year}" for authors, year in works) + ")"
    # textual: "Ziyin and Ueda (2023)"
    return "; ".join(f"{authors} ({year})" for authors, year in works)


def convert_role(match: re.Match, context: Context) -> str:
    role, content = match["role"], match["content"]
    numbering = context.numbering
    explicit = EXPLICIT.match(content)
    text, target = (explicit["text"], explicit["target"]) if explicit else ("", content)
    if role == "glue:text":
        return format_glued(context.glued, content)
    if role in ("cite", "cite:t", "cite:p", "cite:ps", "cite:ts"):
        # {cite} is parenthetical in the book's author-year style, like {cite:p}
        return cite_text(context, content, "cite:t" if role.startswith("cite:t") else "cite:p")
    if role == "doc":
        stem = target.rsplit("/", 1)[-1]
        return text or context.titles.get(stem, stem)
    if role == "eq":
        if target not in numbering.equations:
            raise MystLeftOver(f"{{eq}} to an unknown label: {target!r}")
        return f"[({numbering.equations[target]})](#{target})"
    if role == "numref":
        for names, word in ((numbering.figures, "Figure"), (numbering.equations, "Equation"),
                            (numbering.exercises, "Exercise")):
            if target in names:
                shown = text.replace("{number}", names[target]).replace("%s", names[target]) if text else f"{word} {names[target]}"
                return f"[{shown}](#{target})"
        raise MystLeftOver(f"{{numref}} to an unknown label: {target!r}")
    if role in ("ref", "prf:ref"):
        known = {**numbering.sections, **numbering.statements, **numbering.exercises,
                 **{k: f"Figure {v}" for k, v in numbering.figures.items()}}
        if not text and target not in known:
            return f"[{target}](#{target})"
        return f"[{text or known[target]}](#{target})"
    if role in ("math",):
        return f"${content}$"
    raise MystLeftOver(f"unknown MyST role {{{role}}} in: {match.group(0)!r}")


def convert_inline(text: str, context: Context) -> str:
    return ROLE.sub(lambda m: convert_role(m, context), text)


def quote(lines: list[str]) -> list[str]:
    return [f"> {line}" if line.strip() else ">" for line in lines]


def list_table(body: list[str]) -> list[str]:
    """A MyST ``list-table`` (first row the header) as a pipe table."""
    rows: list[list[str]] = []
    for line in body:
        if line.startswith("* - "):
            rows.append([line[4:].strip()])
        elif line.startswith("  - ") and rows:
            rows[-1].append(line[4:].strip())
        elif line.strip() and rows:
            rows[-1][-1] += " " + line.strip()
    if not rows:
        return []
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
    return lines + ["| " + " | ".join(row) + " |" for row in rows[1:]]


def convert_directive(name: str, argument: str, options: dict[str, str], body: list[str], context: Context) -> list[str]:
    """Markdown lines for one directive (its body already converted)."""
    numbering = context.numbering
    argument = convert_inline(argument.strip(), context)
    if name == "glue:figure":
        label = options.get("name", "")
        key = argument
        if key not in context.glued:
            raise MystLeftOver(f"glue:figure of a key that no cell glued: {key!r}")
        number = numbering.figures.get(label)
        anchor = [f'<a id="{label}"></a>', ""] if label else []
        title = f"**Figure {number}.** " if number else ""
        caption = " ".join(line.strip() for line in body if line.strip())
        return [*anchor, f"{title}{caption}".strip()]
    if name == "math":
        label = options.get("label")
        if label not in numbering.equations:
            return ["$$", *body, "$$"]
        return [f'<a id="{label}"></a>', "", "$$", *body, f"\\tag{{{numbering.equations[label]}}}", "$$"]
    if name == "exercise":
        label = options.get("label", "")
        number = numbering.exercises.get(label, "")
        heading = f"**Exercise {number}**" + (f" ({argument})" if argument else "")
        anchor = [f'<a id="{label}"></a>', ""] if label else []
        return [*anchor, *quote([heading, "", *body])]
    if name == "solution-start":
        number = numbering.exercises.get(argument, "")
        return [f"**Solution to Exercise {number}.** The code cells below solve it."]
    if name == "solution-end":
        return []
    if name == "prf:proof":
        return ["*Proof.*", "", *body, "", "∎"]
    if name.startswith("prf:"):
        label = options.get("label", "")
        heading = numbering.statements.get(label, PROOF_TITLES.get(name[4:], name[4:].capitalize()))
        anchor = [f'<a id="{label}"></a>', ""] if label else []
        return [*anchor, *quote([f"**{heading}**" + (f" ({argument})" if argument else ""), "", *body])]
    if name == "list-table":
        return list_table(body)
    if name == "nb-exec-table":  # filled by MyST-NB from the book build's execution records
        return ["*The table of execution times is made when the book is built: see the online book.*"]
    if name in ADMONITIONS:
        title = argument or name.capitalize()
        return quote([f"**{title}**", "", *body])
    raise MystLeftOver(f"unknown MyST directive {{{name}}}")


def convert_block(lines: list[str], context: Context) -> list[str]:
    """Convert markdown lines: directives (recursively), label lines, roles; code fences kept."""
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        opener = FENCE.match(line)
        plain_fence = re.match(r"^(`{3,}|~{3,})", line)
        label = LABEL_LINE.match(line)
        if opener:
            fence = opener["fence"]
            end = index + 1
            depth = 1
            while end < len(lines):
                candidate = lines[end]
                inner = FENCE.match(candidate)
                if inner and inner["fence"][0] == fence[0] and len(inner["fence"]) == len(fence):
                    depth += 1
                elif candidate.strip() == fence or (candidate.strip().startswith(fence[0] * len(fence))
                                                   and set(candidate.strip()) == {fence[0]}
                                                   and len(candidate.strip()) >= len(fence)):
                    depth -= 1
                    if depth == 0:
                        break
                end += 1
            content = lines[index + 1:end]
            options = {}
            while content and OPTION.match(content[0]):
                option = OPTION.match(content[0])
                options[option["key"]] = option["value"] or ""
                content = content[1:]
            body = content if opener["name"] == "math" else convert_block(content, context)
            out += convert_directive(opener["name"], opener["argument"], options, body, context)
            index = end + 1
        elif plain_fence:
            end = index + 1
            while end < len(lines) and not lines[end].startswith(plain_fence.group(1)):
                end += 1
            out += lines[index:end + 1]
            index = end + 1
        elif label:
            out.append(f'<a id="{label["label"]}"></a>')
            index += 1
        else:
            out.append(convert_inline(line, context))
            index += 1
    return out


def convert_markdown(text: str, context: Context) -> str:
    """One markdown cell (or markdown output) as plain Jupyter markdown."""
    numbering = context.numbering

    def tag_math(match: re.Match) -> str:
        label = match["label"]
        return f'<a id="{label}"></a>\n\n$${match["body"].rstrip()} \\tag{{{numbering.equations.get(label, "")}}}$$'

    text = LABELLED_MATH.sub(tag_math, text)
    converted = "\n".join(convert_block(text.splitlines(), context))
    left = [m.group(0) for m in ROLE.finditer(converted)] + [l for l in converted.splitlines()
                                                            if FENCE.match(l) or LABEL_LINE.match(l)]
    if left:
        raise MystLeftOver(f"MyST left after conversion: {left[:3]}")
    return converted


def figure_output(glued: dict) -> nbformat.NotebookNode:
    """A glued figure as an ordinary ``display_data`` image output."""
    data = {key: value for key, value in glued["data"].items() if key.startswith("image/") or key == "text/plain"}
    metadata = {key: value for key, value in glued["metadata"].items() if key != "scrapbook"}
    return nbformat.v4.new_output("display_data", data=data, metadata=metadata)


def standalone_outputs(outputs: list, context: Context) -> list:
    """Glued values (now in the text) dropped, markdown outputs converted."""
    kept = []
    for output in outputs:
        scrapbook = output.get("metadata", {}).get("scrapbook")
        if scrapbook:
            if scrapbook.get("mime_prefix"):
                continue  # glued with display=False: shown where the text refers to it
            output = nbformat.from_dict({**output, "metadata": {k: v for k, v in output["metadata"].items()
                                                                if k != "scrapbook"}})
        if "text/markdown" in output.get("data", {}):
            output = nbformat.from_dict(output)
            output["data"]["text/markdown"] = convert_markdown(output["data"]["text/markdown"], context)
        kept.append(output)
    return kept


GLUED_FIGURE = re.compile(r"^(?:`{3,}|:{3,})\{glue:figure\}\s*(?P<key>\S+)", re.M)


def standalone_notebook(notebook: nbformat.NotebookNode, *, chapter: int | None, citations: dict[str, tuple[str, str]],
                        titles: dict[str, str], preface: str = "", glued: dict[str, dict] | None = None,
                        ) -> nbformat.NotebookNode:
    """The executed chapter ``notebook`` as an ordinary notebook (see the module docstring).

    ``glued`` adds glued values kept outside the notebook (myst-nb's ``<page>.glue.json``).
    """
    notebook = nbformat.from_dict(notebook)
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    context = Context(collect_numbering(markdown, chapter), {**(glued or {}), **glued_values(notebook)},
                      citations, titles)
    cells = [nbformat.v4.new_markdown_cell(preface)] if preface else []
    last_code = None
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for key in GLUED_FIGURE.findall(cell.source):
                if key not in context.glued:
                    raise MystLeftOver(f"glue:figure of a key that no cell glued: {key!r}")
                if last_code is None:
                    raise MystLeftOver(f"glue:figure {key!r} comes before any code cell")
                last_code.outputs.append(figure_output(context.glued[key]))
            cell.source = convert_markdown(cell.source, context)
        elif cell.cell_type == "code":
            cell.outputs = standalone_outputs(cell.get("outputs", []), context)
            last_code = cell
        cell.metadata.pop("mystnb", None)
        cells.append(cell)
    notebook.cells = cells
    for key in ("jupytext", "mystnb", "source_map"):
        notebook.metadata.pop(key, None)
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"  # deterministic ids: the same build gives the same file
    nbformat.validate(notebook)
    return notebook


# --- what the book knows: chapter numbers, page titles, citations --------------------------------

def book_facts(root: Path) -> tuple[dict[str, int], dict[str, str], dict[str, tuple[str, str]]]:
    """Chapter numbers (stem -> n), page titles (stem -> title) and citations (key -> authors, year)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    numbers: dict[str, int] = {}
    files = [toc["root"]]
    for part in toc.get("parts", []):
        entries = [entry["file"] for entry in part.get("chapters", [])]
        files += entries
        if part.get("numbered"):
            for entry in entries:
                numbers[entry.rsplit("/", 1)[-1]] = len(numbers) + 1
    from phaselab.references import works

    titles = {docname.rsplit("/", 1)[-1]: page_title(docname, root) for docname in files}
    citations = {key: (work.authors, work.year) for key, work in works(root / "book" / "references.bib").items()}
    return numbers, titles, citations


def preface_for(stem: str, number: int | None, title: str) -> str:
    chapter = f"Chapter {number} of " if number else "A page of "
    return (f"*{chapter}the executable book* Phase Transitions in Learning: *{title}*.  This notebook "
            "is the page as the book built it, figures and numbers included.  To run it again, clone the "
            "book's repository and run `make lab` in it (it installs the library `phaselab` the "
            "notebook imports), or `make notebook CHAPTER=" + stem + "` to execute it from the command line.")


def convert_for_book(notebook: nbformat.NotebookNode, stem: str, root: Path,
                     glued: dict[str, dict] | None = None) -> nbformat.NotebookNode:
    """The standalone form of page ``stem`` of the book at ``root``."""
    numbers, titles, citations = book_facts(root)
    return standalone_notebook(notebook, chapter=numbers.get(stem), citations=citations, titles=titles,
                               preface=preface_for(stem, numbers.get(stem), titles.get(stem, stem)), glued=glued)


def execute_chapter(source: Path, timeout: int = 1800) -> nbformat.NotebookNode:
    """Execute a MyST chapter as the book does (in its folder, with the book's kernel)."""
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(source)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute a chapter and write it as a standalone notebook.")
    parser.add_argument("chapter", type=Path, help="the chapter's MyST file, e.g. book/l2_transitions.md")
    parser.add_argument("-o", "--output", type=Path, help="where to write (default _build/notebooks/<stem>.ipynb)")
    args = parser.parse_args(argv)
    source = args.chapter.resolve()
    if not source.is_file():
        parser.error(f"chapter must be a MyST file, got {args.chapter}")
    root = source.parents[1]
    output = args.output or root / "_build" / "notebooks" / f"{source.stem}.ipynb"
    notebook = convert_for_book(execute_chapter(source), source.stem, root)
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, output)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
