"""A real server in a subprocess on 127.0.0.1: started, waited for, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
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
