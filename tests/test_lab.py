"""`make lab`: a Jupyter server started headless on 127.0.0.1 opens every chapter as a notebook.

JupyterLab comes from requirements-lab.txt (`make lab` and `make test` install it).  The test starts
the same server JupyterLab runs on, asks its contents API for each chapter's MyST file as a
notebook (jupytext's contents manager does the conversion), compares the cells with the source,
and stops the server.  Skipped when JupyterLab is not installed, unless ``PHASEBOOK_LAB_REQUIRED=1``
(set by ``make test``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]] + [entry["file"] for part in toc.get("parts", []) for entry in part.get("chapters", [])]
    return [name for name in names if "```{code-cell}" in (ROOT / f"{name}.md").read_text()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        if os.environ.get("PHASEBOOK_LAB_REQUIRED") == "1":
            pytest.fail("JupyterLab is not installed: `make lab` installs requirements-lab.txt")
        pytest.skip("JupyterLab is not installed (requirements-lab.txt)")
    port, token = free_port(), secrets.token_hex(16)
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}", "--ServerApp.open_browser=False", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                request(base, token, "/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Jupyter server did not start: {process.stderr.read()[-2000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def request(base: str, token: str, path: str) -> dict:
    req = urllib.request.Request(base + path, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=60) as reply:
        return json.load(reply)


@pytest.mark.parametrize("docname", chapters())
def test_chapter_opens_as_a_notebook(server, docname: str) -> None:
    base, token = server
    model = request(base, token, f"/api/contents/{docname}.md?type=notebook&content=1")
    assert model["type"] == "notebook", model.get("type")
    cells = model["content"]["cells"]
    source = (ROOT / f"{docname}.md").read_text()
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert len(code) == source.count("```{code-cell}"), (len(code), source.count("```{code-cell}"))
    assert any(cell["cell_type"] == "markdown" for cell in cells)
