"""A minimal headless-Chromium driver over the DevTools pipe (stdlib only, for tests).

Chromium is started with ``--remote-debugging-pipe``: it reads NUL-terminated
JSON commands on fd 3 and writes replies and events on fd 4, the transport
Playwright uses. The network is cut twice: host resolution maps every name
to nothing and a dead proxy takes every request, and DevTools emulates
offline mode, so a page that needs the network shows its errors.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["Page", "find_chromium", "render"]


def find_chromium() -> str | None:
    """Debian's ``chromium`` (or another Chrome on PATH), if installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    """What a page did when loaded: console errors, exceptions, failed loads, a screenshot."""

    def __init__(self) -> None:
        self.console_errors: list[str] = []
        self.exceptions: list[str] = []
        self.failed_requests: list[str] = []
        self.log_errors: list[str] = []
        self.screenshot_png: bytes = b""
        self.evaluated: Any = None

    @property
    def errors(self) -> list[str]:
        return self.console_errors + self.exceptions + self.failed_requests + self.log_errors


class _Pipe:
    def __init__(self, binary: str, profile: str) -> None:
        to_child_r, self._to_child_w = os.pipe()
        self._from_child_r, from_child_w = os.pipe()
        os.set_inheritable(to_child_r, True)
        os.set_inheritable(from_child_w, True)

        def remap() -> None:  # the child's fd 3 reads commands, fd 4 writes replies
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--proxy-server=127.0.0.1:9",
                f"--user-data-dir={profile}",
                "--window-size=1280,2000",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=remap,
            close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child_w, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(deadline=time.monotonic() + 30)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_child_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(line)
        return message

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return

    def close(self) -> None:
        try:
            os.write(
                self._to_child_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0"
            )
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._to_child_w)
            os.close(self._from_child_r)


def render(path: Path, *, script: str | None = None, binary: str | None = None) -> Page:
    """Load ``path`` (offline), run ``script`` in it, take a full-page screenshot."""
    chromium = binary or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium is not installed")
    page = Page()
    with tempfile.TemporaryDirectory() as profile:
        pipe = _Pipe(chromium, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send(
                "Network.emulateNetworkConditions",
                {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
                session=session,
            )
            pipe.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
            pipe.wait_for("Page.loadEventFired")
            if script is not None:
                result = pipe.send(
                    "Runtime.evaluate",
                    {"expression": script, "returnByValue": True},
                    session=session,
                )
                page.evaluated = result.get("result", {}).get("value")
            metrics = pipe.send("Page.getLayoutMetrics", session=session)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = pipe.send(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {
                        "x": 0,
                        "y": 0,
                        "width": size["width"],
                        "height": size["height"],
                        "scale": 1,
                    },
                },
                session=session,
            )
            page.screenshot_png = base64.b64decode(shot["data"])
        finally:
            pipe.close()
    for event in pipe.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            page.console_errors.append(json.dumps(params.get("args", []))[:300])
        elif method == "Runtime.exceptionThrown":
            page.exceptions.append(json.dumps(params.get("exceptionDetails", {}))[:300])
        elif method == "Network.loadingFailed":
            page.failed_requests.append(str(params.get("errorText")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            page.log_errors.append(str(params["entry"].get("text"))[:300])
    return page
