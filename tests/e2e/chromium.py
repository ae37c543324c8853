"""A minimal headless-Chromium driver over the DevTools protocol, standard library only.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol commands from fd 3 and writes
replies and events to fd 4, each message one JSON object followed by a NUL byte. A reader thread parses
the replies into a queue, so that every wait has a timeout; the browser runs in its own process group and
is always killed (with every helper process it spawned) when the :func:`launch` context ends.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--remote-debugging-pipe",
    "--hide-scrollbars",
    "--window-size=1280,900",
)
TIMEOUT_S = 60.0
_TRAMPOLINE = """
import fcntl, os, sys
ends = [int(fd) for fd in sys.argv[1:3]]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in ends]
for fd in ends:
    os.close(fd)
os.dup2(high[0], 3)
os.dup2(high[1], 4)
for fd in high:
    os.close(fd)
os.execv(sys.argv[3], sys.argv[3:])
"""

# every image of the page once loaded (the load event waits for all of them), with the outcome of
# HTMLImageElement.decode(): "" or the decoding error. Note: Chromium decodes a PNG cut after some image
# data as far as it goes (the rest blank), so only a corrupt or missing header/stream makes it fail.
_IMAGES_JS = """
Promise.all(Array.from(document.images).map(img => img.decode().then(() => "", error => String(error))
    .then(decodeError => ({alt: img.alt, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
                           decodeError}))))
"""


class BrowserError(RuntimeError):
    """The browser could not be started, timed out or answered a command with an error."""


def find_chromium() -> str | None:
    """``$FREQLENS_CHROMIUM`` if set (and executable), else the first Chromium/Chrome binary on PATH."""
    override = os.environ.get("FREQLENS_CHROMIUM")
    if override:
        return shutil.which(override)
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclasses.dataclass
class PageCheck:
    """What :func:`check_page` saw: one dict per ``<img>`` and every console error / exception."""

    images: list[dict[str, Any]]
    errors: list[str]
    screenshot: Path

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [image for image in self.images if not image["naturalWidth"] > 0]


@contextlib.contextmanager
def launch(binary: str, timeout: float = TIMEOUT_S) -> Iterator[Chromium]:
    """Start headless Chromium; the browser and all its helper processes are killed on exit."""
    browser = Chromium(binary, timeout)
    browser.start()
    try:
        yield browser
    finally:
        browser.close()


class Chromium:
    """A headless Chromium process driven over ``--remote-debugging-pipe`` (started by :func:`launch`)."""

    def __init__(self, binary: str, timeout: float = TIMEOUT_S) -> None:
        self.binary = binary
        self.timeout = timeout
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._events: queue.Queue[dict] = queue.Queue()
        self._reply_ready = threading.Condition()
        self._closed = False
        self._browser_gone = False

    # -- process -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._profile = tempfile.mkdtemp(prefix="freqlens-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        # a tiny Python trampoline moves the two pipe ends to fds 3 and 4 and execs the browser (no
        # preexec_fn: forking a threaded interpreter into Python code is unsafe)
        command = [
            sys.executable, "-c", _TRAMPOLINE, str(to_browser_read), str(from_browser_write),
            self.binary, *FLAGS, f"--user-data-dir={self._profile}", "about:blank",
        ]
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(to_browser_read, from_browser_write),
                start_new_session=True,  # own process group: killed as a whole in close()
            )
        except OSError as error:
            os.close(self._to_browser)
            os.close(self._from_browser)
            shutil.rmtree(self._profile, ignore_errors=True)
            raise BrowserError(f"cannot start {self.binary}: {error}") from error
        finally:
            os.close(to_browser_read)
            os.close(from_browser_write)
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read_stderr, daemon=True).start()
        threading.Thread(target=self._read_messages, daemon=True).start()

    def close(self) -> None:
        """Kill the browser's whole process group, close the pipes and remove the temporary profile."""
        if self._closed:
            return
        self._closed = True
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=self.timeout)
            deadline = time.monotonic() + 5.0  # let the renderer / zygote helpers of the group die too
            while time.monotonic() < deadline and _group_alive(self.process.pid):
                time.sleep(0.05)
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self._profile, ignore_errors=True)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line)
        self.process.stderr.close()

    def _read_messages(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._reply_ready:
                        self._replies[message["id"]] = message
                        self._reply_ready.notify_all()
                else:
                    self._events.put(message)
        with self._reply_ready:  # browser gone: wake up anyone waiting for a reply
            self._browser_gone = True
            self._reply_ready.notify_all()

    def _diagnostics(self) -> str:
        tail = b"".join(self._stderr[-15:]).decode("utf-8", "replace").strip()
        return f"\n--- {self.binary} stderr (tail) ---\n{tail}" if tail else ""

    # -- protocol ------------------------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one protocol command and return its ``result`` (timeout: ``self.timeout`` seconds)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as error:
            raise BrowserError(f"{method}: cannot write to the browser: {error}{self._diagnostics()}") from error
        deadline = time.monotonic() + self.timeout
        with self._reply_ready:
            while self._next_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"{method}: no reply within {self.timeout:g} s{self._diagnostics()}")
                if self._browser_gone:
                    raise BrowserError(f"{method}: the browser exited{self._diagnostics()}")
                self._reply_ready.wait(min(left, 0.5))
            reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, method: str, session: str | None = None) -> tuple[dict, list[dict]]:
        """Wait for the event ``method``; return it and every other event received meanwhile."""
        deadline = time.monotonic() + self.timeout
        others = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no {method} event within {self.timeout:g} s{self._diagnostics()}")
            try:
                event = self._events.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self._browser_gone:
                    raise BrowserError(f"the browser exited before {method}{self._diagnostics()}") from None
                continue
            if event.get("method") == method and (session is None or event.get("sessionId") == session):
                return event, others
            others.append(event)

    def drain_events(self) -> list[dict]:
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of the group ``pgid`` remains (Linux ``/proc``)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            return True
    return False


def _error_text(event: dict) -> str | None:
    """A readable line for a console error / uncaught exception / error log entry, else ``None``."""
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        args = params.get("args", [])
        return "console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in args)
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        description = details.get("exception", {}).get("description") or details.get("text", "")
        return f"uncaught exception: {description.splitlines()[0] if description else ''}"
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        return f"log error ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip()
    return None


def check_page(
    binary: str, page: Path, screenshot: Path, *, timeout: float = TIMEOUT_S, max_height: int = 12000
) -> PageCheck:
    """Open ``page`` (a local HTML file) in headless Chromium and inspect it.

    Collects every console error, uncaught exception and error log entry from before the navigation
    until after the load event, the natural size of every ``<img>``, and writes a full-page PNG
    screenshot (at most ``max_height`` CSS pixels tall) to ``screenshot``.
    """
    with launch(binary, timeout=timeout) as browser:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.drain_events()  # about:blank chatter (and the replay of older console messages)
        navigation = browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        if navigation.get("errorText"):
            raise BrowserError(f"cannot open {page}: {navigation['errorText']}")
        _, events = browser.wait_for("Page.loadEventFired", session=session)
        images = browser.send(
            "Runtime.evaluate",
            {"expression": _IMAGES_JS, "awaitPromise": True, "returnByValue": True},
            session=session,
        )
        if "exceptionDetails" in images:
            raise BrowserError(f"image check failed: {images['exceptionDetails']}")
        metrics = browser.send("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        shot = browser.send(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
            session=session,
        )
        events += browser.drain_events()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    errors = [text for text in map(_error_text, events) if text]
    return PageCheck(images=images["result"]["value"], errors=errors, screenshot=screenshot)
