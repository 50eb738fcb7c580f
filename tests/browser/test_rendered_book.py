"""The rendered book, as a reader meets it: every page of _toc.yml opened in headless Chromium.

Each page must load without console errors, uncaught exceptions or failed loads.  Its mathematics
must be typeset by MathJax: no raw TeX left, no TeX errors, in the text, the link texts and the
tables of contents alike.  The smallest text of every figure must render at 10 CSS px or more at a
1280 px viewport (read from the figure's PNG, which records its smallest font and resolution).
Every image must have loaded, and every figure must show with a non-zero size and carry alt text
and a caption; no cell output may show an error; no table may be wider than the page's text column;
every internal link (cross-references, citations, the download menu) must reach an existing page
and anchor.  Notebook pages must offer a downloadable ``.ipynb`` that stands alone: valid, executed,
one image output per figure of the page, no MyST-only syntax left (nor on the page itself).  The search page must find each
chapter by a word of its title, with snippets free of raw TeX.  Viewport-sized screenshots of each
page, top to bottom (and the top of pages with figures in the dark theme), are saved for a person
to look at.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from functools import lru_cache
from io import BytesIO
from pathlib import Path

import nbformat
import pytest
from book_pages import HTML, is_notebook, page_source, toc_docnames
from PIL import Image

WAIT_FOR_MATHJAX = """
(async () => {
  if (!document.querySelector('script[src*="mathjax"]')) return "no mathjax on this page";
  for (let i = 0; i < 600 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++)
    await new Promise(resolve => setTimeout(resolve, 50));
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return "MathJax did not start";
  await MathJax.startup.promise;
  return "typeset";
})()
"""

MATH_REPORT = r"""
(() => {
  const main = document.querySelector('main') || document.body;
  const untypeset = [...main.querySelectorAll('.math')]
    .filter(e => !e.querySelector('mjx-container') && !e.closest('mjx-container'))
    .map(e => e.textContent.trim().slice(0, 100));
  const errors = [...main.querySelectorAll('mjx-merror, [data-mjx-error]')]
    .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 100));
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight';
  const tex = /\$\$|\$[^$\s][^$]*\$|\\\(|\\\[|\\begin\{|\\[A-Za-z]{2,}/;
  const rawIn = (root) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
      acceptNode: n => n.parentElement.closest(skip) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
    const found = [];
    for (let n; (n = walker.nextNode());) if (tex.test(n.textContent)) found.push(n.textContent.trim().slice(0, 100));
    return found;
  };
  const raw = rawIn(main);
  // link texts anywhere, and the tables of contents (site navigation, "on this page")
  const outside = [...document.querySelectorAll('a, nav, .bd-toc, .bd-sidebar-primary')]
    .filter(e => !main.contains(e)).flatMap(rawIn);
  const links = [...main.querySelectorAll('a')].flatMap(rawIn);
  return {typeset: main.querySelectorAll('mjx-container').length, untypeset, errors, raw,
          navigation: [...new Set(outside)], links: [...new Set(links)]};
})()
"""

IMAGES = """
[...(document.querySelector('main') || document.body).querySelectorAll('img')].map(img => {
  const box = img.getBoundingClientRect();
  return {src: img.getAttribute('src'), alt: img.getAttribute('alt'), complete: img.complete,
          natural: [img.naturalWidth, img.naturalHeight], shown: [box.width, box.height],
          figure: !!img.closest('figure'), name: img.closest('figure')?.id || img.getAttribute('src'),
          caption: img.closest('figure')?.querySelector('figcaption')?.textContent.trim() || ''};
})
"""

OUTPUT_ERRORS = r"""
(() => {
  const main = document.querySelector('main') || document.body;
  const found = [];
  const bad = '.output.traceback, .output.error, .output.stderr, .problematic, .system-message, .system-messages';
  for (const e of main.querySelectorAll(bad)) found.push(e.className + ': ' + e.textContent.trim().slice(0, 300));
  for (const e of main.querySelectorAll('.cell_output')) {
    const text = e.textContent;
    if (/Traceback \(most recent call last\)|^\s*\w*(Error|Exception|Warning):/m.test(text))
      found.push('cell output: ' + text.trim().slice(0, 300));
  }
  return found;
})()
"""

WIDE_TABLES = """
(() => {
  const article = document.querySelector('article') || document.querySelector('main') || document.body;
  const right = article.getBoundingClientRect().right;
  return [...article.querySelectorAll('table')]
    .filter(t => t.getBoundingClientRect().right > right + 1)
    .map(t => `${Math.round(t.getBoundingClientRect().right - right)} px too wide: ` +
              (t.querySelector('th, td')?.textContent.trim().slice(0, 60) || 'a table'));
})()
"""

LINKS = "[...document.querySelectorAll('a[href]')].map(a => a.href)"

DOWNLOADS = "[...document.querySelectorAll('.dropdown-download-buttons a[href], a.dropdown-item[href]')].map(a => a.href)"

SEARCH_RESULTS = """
(async () => {
  for (let i = 0; i < 300; i++) {
    const summary = document.querySelector('#search-results .search-summary');
    if (summary && summary.textContent.trim() && !/Searching/i.test(summary.textContent)) break;
    await new Promise(resolve => setTimeout(resolve, 100));
  }
  return {links: [...document.querySelectorAll('#search-results ul.search li a')].map(a => a.href),
          snippets: [...document.querySelectorAll('#search-results ul.search li p.context')].map(p => p.textContent)};
})()
"""
SNIPPET_TEX = re.compile(r"\\[A-Za-z]{2,}|\\\(|\\\)|\$[^$\s][^$]*\$")

STOP_WORDS = {"about", "after", "their", "there", "these", "which", "while", "with", "from", "learning"}


@lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    """The ids in a built HTML file."""
    return frozenset(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8")))


def local_target(url: str, base_url: str) -> tuple[Path, str] | None:
    """(file under _build/html, fragment) of an internal link; ``None`` for external links."""
    if not url.startswith(base_url):
        return None
    parsed = urllib.parse.urlsplit(url)
    relative = urllib.parse.unquote(parsed.path)[len(urllib.parse.urlsplit(base_url).path):]
    path = HTML / (relative or "index.html")
    if relative.endswith("/"):
        path = path / "index.html"
    return path, urllib.parse.unquote(parsed.fragment)


def broken_links(urls: list[str], base_url: str) -> list[str]:
    broken = []
    for url in sorted(set(urls)):
        target = local_target(url, base_url)
        if target is None:
            continue
        path, fragment = target
        if not path.is_file():
            broken.append(f"{url}: no file {path.relative_to(HTML)}")
        elif fragment and path.suffix == ".html" and fragment not in anchors(path):
            broken.append(f"{url}: no anchor #{fragment} in {path.relative_to(HTML)}")
    return broken


MIN_FIGURE_TEXT_PX = 10.0
# The article's text outside code blocks, one line per block element (where MyST's syntax would show
# had a cell's Markdown output not been parsed as MyST).
PROSE_TEXT = """
(() => {
  const article = document.querySelector("article") || document.body;
  const copy = article.cloneNode(true);
  copy.querySelectorAll("pre, code, script, style, mjx-container, .MathJax").forEach(node => node.remove());
  copy.querySelectorAll("p, li, td, th, div, h1, h2, h3, h4, dt, dd").forEach(node => node.append("\\n"));
  return copy.textContent;
})()
"""
# Paragraphs longer than a number set wholly in bold (a glued sentence not marked as prose).
BOLD_PARAGRAPHS = """
[...document.querySelectorAll('article p')]
  .filter(p => p.textContent.trim().length > 80 && [...p.childNodes].every(
    node => node.nodeType !== Node.TEXT_NODE ? Number(getComputedStyle(node).fontWeight) >= 600 : !node.textContent.trim()))
  .map(p => p.textContent.trim().slice(0, 80))
"""
MYST_LEFT = re.compile(r"\{glue|^\([A-Za-z0-9][\w.:-]*\)=\s*$|\{[a-z][\w:-]*\}`|^(`{3,}|:{3,})\{", re.M)


def is_plot(image: dict) -> bool:
    """An image the book's code drew (a figure or a cell's image output), not a logo or an icon."""
    return "_images/" in image["src"] and image["src"].endswith(".png")


def figure_text_problems(images: list[dict], page_url: str) -> list[str]:
    """Figures whose smallest text renders below MIN_FIGURE_TEXT_PX CSS px on the page.

    A figure's PNG records its smallest font (points) and its resolution (dots per inch,
    ``phaselab.plotting``); the text shows at ``pt / 72 * dpi * shown width / natural width`` CSS px.
    """
    problems = []
    for image in images:
        if not is_plot(image) or min(image["natural"]) <= 0:
            continue
        with Image.open(BytesIO(fetch(urllib.parse.urljoin(page_url, image["src"])))) as png:
            text = dict(getattr(png, "text", {}))
        if "phasebook:min-font-pt" not in text:
            problems.append(f"figure {image['name']}: its PNG does not record its font size (made outside phaselab.plotting?)")
            continue
        scale = image["shown"][0] / image["natural"][0]
        pixels = float(text["phasebook:min-font-pt"]) / 72 * float(text["phasebook:dpi"]) * scale
        if pixels < MIN_FIGURE_TEXT_PX:
            problems.append(f"figure {image['name']}: its smallest text renders at {pixels:.1f} CSS px "
                            f"(< {MIN_FIGURE_TEXT_PX}; shown {image['shown'][0]:.0f} px wide)")
    return problems


def notebook_problems(url: str, figures: int) -> list[str]:
    """A downloadable notebook must stand alone: valid, executed, one image output per figure of the
    page, no MyST-only syntax left in its markdown."""
    notebook = nbformat.reads(fetch(url).decode("utf-8"), as_version=4)
    problems = []
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as exc:
        problems.append(f"{url} is not a valid notebook: {str(exc)[:200]}")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if not code or any(cell.get("execution_count") is None for cell in code):
        problems.append(f"{url} is not an executed notebook with code cells")
    images = sum("image/png" in output.get("data", {}) for cell in code for output in cell.get("outputs", []))
    if images != figures:
        problems.append(f"{url} has {images} image outputs, the page {figures} plots")
    for cell in notebook.cells:
        texts = [cell.source] if cell.cell_type == "markdown" else [
            output["data"]["text/markdown"] for output in cell.get("outputs", []) if "text/markdown" in output.get("data", {})]
        for text in texts:
            left = MYST_LEFT.search(text)
            if left:
                problems.append(f"{url}: MyST-only syntax left: {text[max(left.start() - 40, 0):left.end() + 40]!r}")
    return problems


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.read()


@pytest.mark.parametrize("docname", toc_docnames())
def test_page(docname: str, page, base_url: str, screenshot_dir: Path) -> None:
    url = urllib.parse.urljoin(base_url, f"{docname}.html")
    page.goto(url)
    mathjax = page.evaluate(WAIT_FOR_MATHJAX, await_promise=True)
    page.drain()
    stem = docname.replace("/", "__")
    page.viewport_screenshots(screenshot_dir, stem)
    shot = screenshot_dir / f"{stem}-01.png"
    problems = []

    problems += [p for p in page.problems.all() if not p.endswith("/favicon.ico")]  # the book has none

    math = page.evaluate(MATH_REPORT)
    if mathjax not in ("typeset", "no mathjax on this page"):
        problems.append(f"MathJax: {mathjax}")
    problems += [f"math not typeset: {text}" for text in math["untypeset"]]
    problems += [f"TeX error: {text}" for text in math["errors"]]
    problems += [f"raw TeX in the text: {text}" for text in math["raw"]]
    problems += [f"raw TeX in a link text: {text}" for text in math["links"]]
    problems += [f"raw TeX in a table of contents or navigation link: {text}" for text in math["navigation"]]

    images = page.evaluate(IMAGES)
    problems += figure_text_problems(images, url)
    for image in images:
        if not (image["complete"] and min(image["natural"]) > 0):
            problems.append(f"image did not load: {image['src']}")
        if image["figure"] and min(image["shown"]) <= 0:
            problems.append(f"figure shown with zero size: {image['name']}")
        alt = (image["alt"] or "").strip()
        if image["figure"] and (not alt or re.search(r"\.(png|jpe?g|svg|gif)$", alt)):
            problems.append(f"figure without alt text (add :alt: to its glue:figure): {image['name']}")
        if image["figure"] and not image["caption"]:
            problems.append(f"figure without a caption: {image['name']}")

    prose = page.evaluate(PROSE_TEXT)
    problems += [f"MyST left unparsed in the page: {prose[max(m.start() - 40, 0):m.end() + 40]!r}"
                 for m in MYST_LEFT.finditer(prose)]
    problems += [f"paragraph all in bold: {text!r}" for text in page.evaluate(BOLD_PARAGRAPHS)]
    problems += [f"error in the page: {text}" for text in page.evaluate(OUTPUT_ERRORS)]
    problems += [f"table wider than the page: {text}" for text in page.evaluate(WIDE_TABLES)]
    problems += [f"broken link: {text}" for text in broken_links(page.evaluate(LINKS), base_url)]

    if is_notebook(docname):
        downloads = [u for u in page.evaluate(DOWNLOADS) if u.endswith(".ipynb")]
        if not downloads:
            problems.append("the download menu offers no .ipynb")
        for download in downloads:
            problems += notebook_problems(download, sum(is_plot(image) for image in images))

    if any(image["figure"] for image in images):
        page.evaluate("document.documentElement.dataset.theme = 'dark'")
        page.evaluate("new Promise(resolve => setTimeout(resolve, 300))", await_promise=True)
        page.viewport_screenshots(screenshot_dir, f"{stem}-dark", max_shots=3)

    assert not problems, f"{docname} (screenshot {shot}):\n" + "\n".join(problems)


def test_references_page_lists_the_cited_works(page, base_url: str) -> None:
    page.goto(urllib.parse.urljoin(base_url, "book/references.html"))
    entries = page.evaluate("document.querySelectorAll('main .citation, main [role=\"doc-biblioentry\"]').length")
    assert entries > 0, "the references page lists no bibliography entries"


def title_word(docname: str) -> str:
    """A distinctive word of the page's title to search for: its longest word not a stop word."""
    title = next(line[2:] for line in page_source(docname).splitlines() if line.startswith("# "))
    words = [w for w in re.findall(r"[A-Za-z]{5,}", title) if w.lower() not in STOP_WORDS]
    return max(words, key=len)


@pytest.mark.parametrize("docname", [d for d in toc_docnames() if is_notebook(d)])
def test_search_finds_the_chapter(docname: str, page, base_url: str, screenshot_dir: Path) -> None:
    word = title_word(docname)
    page.goto(urllib.parse.urljoin(base_url, f"search.html?q={urllib.parse.quote(word)}"))
    results = page.evaluate(SEARCH_RESULTS, await_promise=True)
    page.screenshot(screenshot_dir / f"search-{word}.png")
    links = results["links"]
    assert any(urllib.parse.urlsplit(url).path.endswith(f"{docname}.html") for url in links), (word, links)
    assert not [s for s in results["snippets"] if SNIPPET_TEX.search(s)], results["snippets"]
    assert not [p for p in page.problems.all() if not p.endswith("/favicon.ico")], page.problems.all()


def test_figures_have_an_opaque_white_background(html_dir: Path) -> None:
    """Figures carry their own white background, so they read the same in the light and dark theme."""
    images = sorted((html_dir / "_images").glob("*.png"))
    problems = []
    for path in images:
        with Image.open(path) as image:
            rgba = image.convert("RGBA")
        width, height = rgba.size
        border = [rgba.getpixel((x, y)) for x in range(width) for y in (0, height - 1)]
        border += [rgba.getpixel((x, y)) for y in range(height) for x in (0, width - 1)]
        if min(pixel[3] for pixel in border) < 255:
            problems.append(f"{path.name}: transparent background")
        elif sum(min(pixel[:3]) >= 245 for pixel in border) < 0.5 * len(border):
            problems.append(f"{path.name}: background is not white")
    assert not problems, "\n".join(problems)
