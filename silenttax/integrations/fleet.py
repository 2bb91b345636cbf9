"""Multi-worker serving: each worker writes its snapshot, a scrape merges the directory.

Pre-fork servers (gunicorn, uvicorn ``--workers``) run one middleware per worker
process. With ``SilentTaxMiddleware(app, snapshot_dir=path)`` (or
``instrument(app, snapshot_dir=path)``) each worker writes its
:class:`~silenttax.integrations.asgi.ServingState` to
``path/worker-<pid>-<token>.json`` atomically (temp file, fsync, rename) every
``snapshot_interval`` seconds and at shutdown. :func:`read_directory` (what
:meth:`SilentTaxCollector.from_directory
<silenttax.integrations.prometheus.SilentTaxCollector.from_directory>` calls at
each scrape) merges them: counts add up exactly and the quantiles are those of the
merged sketch, right for the fleet.

Dead workers' files are folded into one ``archive.json`` under an ``fcntl`` lock
(a worker exiting cleanly folds itself; a scrape folds the files of processes that
are gone), so the directory holds O(live workers) files and a scrape reads that
many, unlike prometheus_client's multiprocess mode whose dead-worker files pile up.
A fold is crash-safe: the archive names the files it already holds (its
``workers``), so a fold killed between writing the archive and deleting the files
never counts them twice. A crashed (SIGKILLed) worker loses what it recorded since
its last write.

One directory per host (worker liveness is read from process ids), created by the
user, not shared between different applications.

Examples:
    >>> import tempfile
    >>> from silenttax.integrations.asgi import SilentTaxMiddleware
    >>> folder = tempfile.mkdtemp()
    >>> async def app(scope, receive, send): ...
    >>> worker = SilentTaxMiddleware(app, snapshot_dir=folder)
    >>> worker.writer.write().name.startswith("worker-")
    True
    >>> read_directory(folder).requests()
    {}
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from silenttax._system import background
from silenttax.errors import InputError, SilentTaxError

__all__ = ["ARCHIVE", "SnapshotWriter", "fold_dead", "read_directory"]

ARCHIVE = "archive.json"
"""The file dead workers are folded into."""
_LOCK = ".silenttax.lock"
_PATTERN = "worker-*.json"
_STALE_TEMP = 3600.0  # a temp file this old was left by a killed writer


def _worker_pid(path: Path) -> int | None:
    parts = path.stem.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / _LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _folder(path: str | os.PathLike[str]) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"snapshot_dir: {str(folder)!r} is not a directory")
    return folder


class SnapshotWriter:
    """Write one worker's middleware snapshot to a directory, periodically and at exit.

    Started by the middleware on its first request in each process (so a server that
    forks after building the app gets one writer per worker, each with its own file).

    Args:
        middleware: The ``SilentTaxMiddleware`` whose state is written.
        directory: Where (must exist; one per host and application).
        interval: Seconds between writes.
    """

    def __init__(self, middleware: Any, directory: str | os.PathLike[str], *,
                 interval: float = 5.0) -> None:  # fmt: skip
        self.folder = _folder(directory)
        self.interval = float(interval)
        self._middleware = weakref.ref(middleware)
        self.thread: threading.Thread | None = None
        """The background thread (None until the first request in this process)."""
        self.path = self._new_path()
        self.errors = 0
        """Writes that failed (counted, never raised into a request)."""
        self._stop = threading.Event()
        self._closed = False
        ref = weakref.ref(self)

        def after_fork() -> None:
            writer = ref()
            if writer is not None:
                writer.thread = None
                writer._stop = threading.Event()
                writer._closed = False
                writer.path = writer._new_path()

        os.register_at_fork(after_in_child=after_fork)
        atexit.register(_close_at_exit, ref)

    def _new_path(self) -> Path:
        return self.folder / f"worker-{os.getpid()}-{secrets.token_hex(4)}.json"

    def start(self) -> None:
        """Start writing every ``interval`` seconds (idempotent)."""
        if self.thread is not None:
            return
        self.thread = background(self, SnapshotWriter._tick, self.interval, self._stop,
                                 "silenttax-snapshots")  # fmt: skip

    def _tick(self) -> None:
        try:
            self.write()
        except Exception:
            self.errors += 1

    def write(self) -> Path:
        """Write the snapshot now; returns its path."""
        middleware = self._middleware()
        if middleware is None:
            raise InputError("the middleware of this SnapshotWriter is gone")
        state = middleware.state()
        written: Path = state.model_copy(update={"workers": [self.path.name]}).save(self.path)
        return written

    def close(self) -> None:
        """The last write, then fold this worker's file into the archive (at shutdown)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        if self._middleware() is None or (thread is None and not self.path.exists()):
            return  # nothing was served in this process
        self.write()
        _fold(self.folder, [self.path])


def _close_at_exit(ref: weakref.ref[SnapshotWriter]) -> None:
    writer = ref()
    if writer is not None and writer.path.name.startswith(f"worker-{os.getpid()}-"):
        with contextlib.suppress(Exception):
            writer.close()


def _read(path: Path) -> Any:
    from silenttax.integrations.asgi import ServingState

    return ServingState.load(path)


def _fold(folder: Path, paths: list[Path]) -> int:
    """Fold ``paths`` into the archive under the lock; returns how many were folded."""
    from silenttax.integrations.asgi import SilentTaxMiddleware

    with _locked(folder):
        archive_path = folder / ARCHIVE
        archive = SilentTaxMiddleware.load(archive_path) if archive_path.exists() else None
        held = set(archive.state().workers) if archive is not None else set()
        # files an interrupted fold already merged: delete them, never merge them again
        for name in held:
            (folder / name).unlink(missing_ok=True)
        folded: list[str] = []
        for path in paths:
            if path.name in held or not path.exists():
                continue
            try:
                state = _read(path)
            except SilentTaxError:
                path.rename(path.with_name(f"unreadable-{path.name}"))
                continue
            archive = (
                SilentTaxMiddleware.from_state(state) if archive is None else archive.merge(state)
            )
            folded.append(path.name)
        if archive is None:
            return 0
        if folded or held:
            final = archive.state().model_copy(update={"workers": folded})
            final.save(archive_path)
            for name in folded:
                (folder / name).unlink(missing_ok=True)
        return len(folded)


def fold_dead(directory: str | os.PathLike[str]) -> int:
    """Fold the snapshot files of workers that are no longer running into the archive
    (and remove temp files left by killed writers); returns how many were folded."""
    folder = _folder(directory)
    now = time.time()
    for tmp in folder.glob(".worker-*"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > _STALE_TEMP:
                tmp.unlink()
    dead = [p for p in sorted(folder.glob(_PATTERN)) if (pid := _worker_pid(p)) and not _alive(pid)]
    return _fold(folder, dead) if dead else 0


def read_directory(directory: str | os.PathLike[str], *, own: Any = None) -> Any:
    """The fleet: every worker's snapshot in ``directory`` and the archive, merged into one
    ``SilentTaxMiddleware`` (to export or check). Dead workers are folded first.

    Args:
        directory: Where the workers write.
        own: The calling worker's middleware: its live state replaces its file (which
            may be up to one interval old), so a scrape served by a worker is exact for it.

    Raises:
        InputError: ``directory`` is not a directory, or the snapshots were written with
            different settings.
    """
    from silenttax.integrations.asgi import ServingState, SilentTaxMiddleware

    folder = _folder(directory)
    fold_dead(folder)
    own_name = own.writer.path.name if own is not None and own.writer is not None else None
    states: list[ServingState] = []
    with _locked(folder):  # a consistent view: no fold moves files while they are read
        archive_path = folder / ARCHIVE
        held: set[str] = set()
        if archive_path.exists():
            archive = ServingState.load(archive_path)
            held = set(archive.workers)
            states.append(archive)
        for path in sorted(folder.glob(_PATTERN)):
            if path.name in held or path.name == own_name:
                continue
            try:
                states.append(_read(path))
            except SilentTaxError:
                continue  # a file of another kind or version: left for a person to look at
    if own is not None:
        states.append(own.state())
    if not states:
        return SilentTaxMiddleware(_nothing)
    fleet = SilentTaxMiddleware.from_state(states[0])
    for state in states[1:]:
        fleet.merge(state)
    return fleet


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    return None
