"""Headless Chromium driven through the DevTools protocol (a websocket; ``websocket-client``).

Debian's ``chromium`` is started with a fresh profile and ``--remote-debugging-port=0``; the port
it picks is read from ``DevToolsActivePort`` in the profile.  :class:`Page` sends commands,
collects the console messages, uncaught exceptions and failed loads that the page reports, and
takes full-page screenshots.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import websocket

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--remote-debugging-port=0",
)


class DevToolsError(RuntimeError):
    """A DevTools command failed, or the page did not answer in time."""


def find_chromium() -> str | None:
    """The Chromium executable on PATH (Debian names it ``chromium``)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """A headless Chromium process with its own throw-away profile."""

    def __init__(self, executable: str, startup_timeout: float = 60.0) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="phasebook-chromium-"))
        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.port = self._wait_for_port(startup_timeout)

    def _wait_for_port(self, timeout: float) -> int:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DevToolsError(f"chromium exited with status {self.process.returncode}")
            if port_file.is_file() and port_file.read_text().strip():
                return int(port_file.read_text().split()[0])
            time.sleep(0.1)
        raise DevToolsError(f"chromium did not open its DevTools port within {timeout} s")

    def new_page(self) -> Page:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as reply:
            target = json.load(reply)
        return Page(target["webSocketDebuggerUrl"])

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@dataclass
class PageProblems:
    """What the page reported while it was open: console errors, exceptions, failed loads."""

    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return self.console_errors + self.exceptions + self.log_errors


class Page:
    """One browser tab, driven over its DevTools websocket."""

    def __init__(self, websocket_url: str, timeout: float = 60.0) -> None:
        self.socket = websocket.create_connection(websocket_url, timeout=timeout, suppress_origin=True)
        self.timeout = timeout
        self.next_id = 0
        self.events: list[dict] = []
        self.problems = PageProblems()
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def _receive(self, timeout: float) -> dict | None:
        self.socket.settimeout(timeout)
        try:
            message = json.loads(self.socket.recv())
        except websocket.WebSocketTimeoutException:
            return None
        if "method" in message:
            self._record(message)
        return message

    def _record(self, event: dict) -> None:
        self.events.append(event)
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            self.problems.console_errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description", details.get("text", ""))
            self.problems.exceptions.append(f"uncaught exception: {description}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.problems.log_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())

    def send(self, method: str, **params) -> dict:
        """Send a DevTools command and return its result (events that arrive meanwhile are kept)."""
        self.next_id += 1
        command_id = self.next_id
        self.socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            message = self._receive(max(0.1, deadline - time.monotonic()))
            if message is not None and message.get("id") == command_id:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error']}")
                return message.get("result", {})
        raise DevToolsError(f"{method}: no answer within {self.timeout} s")

    def wait_for_event(self, method: str, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = len(self.events)
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            self._receive(max(0.1, deadline - time.monotonic()))
        raise DevToolsError(f"no {method} event within {timeout or self.timeout} s")

    def drain(self, seconds: float = 0.3) -> None:
        """Read the events that are still on their way (late console messages)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._receive(max(0.05, deadline - time.monotonic()))

    def goto(self, url: str) -> None:
        """Open ``url`` and wait for its load event; problems are collected from here on."""
        self.events.clear()
        self.problems = PageProblems()
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise DevToolsError(f"navigating to {url}: {result['errorText']}")
        self.wait_for_event("Page.loadEventFired")

    def evaluate(self, expression: str, await_promise: bool = False):
        """The value of a JavaScript expression in the page (JSON-serialisable values only)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=await_promise, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise DevToolsError(details.get("exception", {}).get("description", details.get("text")))
        return result["result"].get("value")

    def screenshot(self, path: Path, max_height: int = 20000) -> None:
        """Save a PNG of the whole page (up to ``max_height`` CSS pixels).

        The viewport is resized to the page's height for the capture, then restored: a clip beyond
        the viewport (``captureBeyondViewport``) lays long pages out shifted sideways.
        """
        metrics = self.send("Page.getLayoutMetrics")
        width = metrics["cssLayoutViewport"]["clientWidth"]
        height = min(math.ceil(metrics["cssContentSize"]["height"]), max_height)
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        try:
            self.evaluate("new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve, 100)))", await_promise=True)
            data = self.send("Page.captureScreenshot", format="png")["data"]
        finally:
            self.send("Emulation.clearDeviceMetricsOverride")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def viewport_screenshots(self, folder: Path, stem: str, max_shots: int = 40) -> list[Path]:
        """Save the page as viewport-sized PNGs, top to bottom (``<stem>-01.png``, ...), the way a
        reader scrolls through it."""
        metrics = self.send("Page.getLayoutMetrics")
        viewport = metrics["cssLayoutViewport"]["clientHeight"]
        height = math.ceil(metrics["cssContentSize"]["height"])
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{stem}-[0-9][0-9].png"):
            old.unlink()
        paths = []
        for index, top in enumerate(range(0, height, viewport)[:max_shots], start=1):
            self.evaluate(f"window.scrollTo(0, {top})")
            self.evaluate("new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve, 50)))", await_promise=True)
            path = folder / f"{stem}-{index:02d}.png"
            path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
            paths.append(path)
        self.evaluate("window.scrollTo(0, 0)")
        return paths

    def close(self) -> None:
        self.socket.close()
