"""Drive a benchmark worker process (:mod:`silenttax.benchmark._worker`) over JSON lines.

Every request has a timeout; a worker that crashes, hangs past it or writes
something that is not a protocol message is killed and reported as a
:class:`~silenttax.errors.StackError` naming the arm and the command, with
the tail of what the worker wrote to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from silenttax.errors import StackError

__all__ = ["WORKER", "Worker", "worker_environ"]

#: The worker script, run by path so the other environment needs no silenttax.
WORKER = Path(__file__).with_name("_worker.py")
_EOF = object()
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: Variables that would let one environment leak into the other's worker.
_LEAKY = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")


def worker_environ(threads: int | None) -> dict[str, str]:
    """The environment both arms' workers get: this one, minus what leaks an
    interpreter's packages into another, with the thread variables set alike."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    for var in _THREAD_VARS:
        if threads is not None:
            env[var] = str(threads)
    return env


class Worker:
    """One worker process on interpreter ``python``; use as a context manager.

    Args:
        python: The interpreter (another environment's ``bin/python``).
        label: Which arm it is, for messages ("baseline", "candidate").
        cores: CPUs the worker is pinned to (None: inherit).
        threads: Thread count exported as OMP/MKL/OpenBLAS variables.
        timeout: Seconds any one request may take before the worker is killed.
        command: The command line (default: the silenttax worker on ``python``).
    """

    def __init__(
        self,
        python: str | os.PathLike[str],
        *,
        label: str,
        cores: Sequence[int] | None = None,
        threads: int | None = None,
        timeout: float = 120.0,
        command: Sequence[str] | None = None,
    ) -> None:
        self.label = label
        self.timeout = timeout
        args = list(command) if command is not None else [str(python), "-I", str(WORKER)]
        if cores:
            args += ["--cores", ",".join(str(c) for c in sorted(cores))]
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        try:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=worker_environ(threads),
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except OSError as exc:
            self._stderr.close()
            raise StackError(f"{label}: cannot start a worker with {python}: {exc}") from exc
        self._lines: queue.Queue[object] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"worker-{label}")
        self._reader.start()
        try:
            self.pid = int(self._wait("start", timeout).get("pid", self._process.pid))
        except BaseException:
            self.kill()
            self._stderr.close()
            raise

    def _read(self) -> None:
        stream = self._process.stdout
        assert stream is not None
        for line in stream:
            self._lines.put(line)
        self._lines.put(_EOF)

    def _tail(self) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 2000))
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"; its stderr ends: {text[-1500:]}" if text else ""

    def _fail(self, what: str) -> StackError:
        self.kill()
        return StackError(f"{self.label} worker {what}{self._tail()}")

    def _wait(self, cmd: str, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise self._fail(f"did not answer {cmd!r} within {timeout:g} s; killed it") from None
        if line is _EOF:
            code = self._process.wait()
            raise self._fail(f"exited with status {code} during {cmd!r}")
        assert isinstance(line, str)
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict) or "ok" not in message:
            raise self._fail(f"wrote something that is not a protocol message: {line[:200]!r}")
        if not message["ok"]:
            detail = str(message.get("traceback") or "").strip().splitlines()[-6:]
            raise self._fail(
                f"failed {cmd!r}: {message.get('error')}"
                + ("\n" + "\n".join(detail) if detail else "")
            )
        return message

    def request(self, cmd: str, *, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Send one request and return the answer (a :class:`StackError` otherwise)."""
        if self._process.poll() is not None:
            raise self._fail(f"is not running (status {self._process.returncode})")
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            stdin.flush()
        except (OSError, ValueError):
            code = self._process.wait()
            raise self._fail(f"exited with status {code} before {cmd!r}") from None
        return self._wait(cmd, self.timeout if timeout is None else timeout)

    def kill(self) -> None:
        """Stop the process now (idempotent)."""
        if self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self) -> None:
        """Ask the worker to exit, then make sure it has."""
        if self._process.poll() is None:
            with contextlib.suppress(StackError):
                self.request("exit", timeout=5)
        self.kill()
        self._stderr.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
