"""A real server in a subprocess on 127.0.0.1: started, waited for, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(
    folder: Path, args: Sequence[str], *, port: int, env: dict[str, str] | None = None,
    ready: str = "/metrics", timeout: float = 60, program: Sequence[str] = (sys.executable, "-m"),
) -> Iterator[str]:  # fmt: skip
    """``python -m <args>`` (or ``<program> <args>``) in ``folder`` until it answers
    ``ready``; yields its URL."""
    import httpx

    log_path = folder / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [*program, *args], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})}, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                httpx.get(url + ready, timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"{args[0]} did not start: {log_path.read_text()}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):  # workers it left behind (LitServe's)
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


class Clients:
    """Threads loading ``url + path`` with keep-alive GETs until :meth:`stop`; more can
    be added while they run."""

    def __init__(self, url: str, path: str = "/predict") -> None:
        self.url, self.path = url, path
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _load(self) -> None:
        import httpx

        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                with contextlib.suppress(httpx.TransportError):
                    client.get(self.url + self.path)

    def add(self, n: int) -> None:
        """Start ``n`` more clients."""
        for _ in range(n):
            thread = threading.Thread(target=self._load, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


@contextlib.contextmanager
def serving(folder: Path, app: str, clients: int) -> Iterator[tuple[str, Clients]]:
    """``app`` (the source of ``served.py``, an ASGI ``app``) under one uvicorn worker on
    127.0.0.1 with ``clients`` threads loading ``/predict`` while the block runs; yields
    its URL and the clients (to add more)."""
    (folder / "served.py").write_text(app)
    port = free_port()
    args = ["uvicorn", "served:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    with running(folder, args, port=port) as url:
        load = Clients(url)
        load.add(clients)
        try:
            yield url, load
        finally:
            load.stop()
