"""Fixtures of the test of the rendered book: the built HTML, a local web server, headless Chromium.

The tests run when ``_build/html/index.html`` exists (``make test`` builds the book first) and are
skipped otherwise, unless ``PHASEBOOK_BROWSER_REQUIRED=1`` (set by ``make test``) makes a missing
book or browser an error.  Screenshots go to ``$PHASEBOOK_BROWSER_OUT`` (default
``_build/browser-test``).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from book_pages import HTML, ROOT
from chromium import Chromium, find_chromium

REQUIRED = os.environ.get("PHASEBOOK_BROWSER_REQUIRED") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def html_dir() -> Path:
    if not (HTML / "index.html").is_file():
        _unavailable(f"the book is not built ({HTML / 'index.html'} is missing): run `make book`")
    return HTML


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    folder = Path(os.environ.get("PHASEBOOK_BROWSER_OUT", ROOT / "_build" / "browser-test"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="session")
def base_url(html_dir: Path):
    """The built book served over HTTP on localhost (as a reader's web server would)."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    executable = find_chromium()
    if executable is None:
        _unavailable("Debian's chromium is not installed (apt-get install chromium)")
    chromium = Chromium(executable)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Chromium):
    tab = browser.new_page()
    yield tab
    tab.close()
