"""Multi-worker serving: each worker writes its snapshot, a scrape merges the directory.

Pre-fork servers (gunicorn, uvicorn ``--workers``) run one middleware per worker
process. With ``SilentTaxMiddleware(app, snapshot_dir=path)`` (or
``instrument(app, snapshot_dir=path)``) each worker writes its
:class:`~silenttax.integrations.asgi.ServingState` to
``path/worker-<pid>-<token>-<generation>.json`` atomically (temp file, fsync,
rename) every ``snapshot_interval`` seconds and at shutdown. :func:`read_directory`
(what :meth:`SilentTaxCollector.from_directory
<silenttax.integrations.prometheus.SilentTaxCollector.from_directory>` calls at
each scrape) merges them: counts add up exactly and the quantiles are those of the
merged sketch, right for the fleet.

**Monotonic.** A scrape reads files only: the scraping worker first writes its own
file (so the scrape is exact for it), then every file is read under the directory
lock. A file only ever grows, and a dead worker's file moves into ``archive.json``
under the same lock, so no scrape shows a smaller total than the one before —
whichever worker answers it, and however often gunicorn recycles workers
(``--max-requests``).

**Exactly once.** Dead workers' files are folded into ``archive.json`` under an
``fcntl`` lock (a worker exiting cleanly folds itself; a scrape folds the files of
processes that are gone), so the directory holds O(live workers) files. A fold is
crash-safe: the archive names the files it already holds (its ``workers``), so a
fold killed between writing the archive and deleting the files never counts them
twice. A crashed (SIGKILLed) worker loses what it recorded since its last write.

**Generations.** A server start is a new *generation*: the id of the server
process (the gunicorn or uvicorn master, the process that spawned the workers, or
the worker itself when it runs alone; ``SILENTTAX_GENERATION`` overrides it, e.g.
with a deploy id). The first write of a new generation, once the previous
generation's server has exited, retires the previous one: its archive and its dead
workers' files are merged into ``generations/<id>.json`` (the last
:data:`KEEP_GENERATIONS` are kept; :func:`previous_generation` finds the latest, a
snapshot ``silenttax.load`` reads, to use as a baseline). Counters then start again
from zero, like any Prometheus counter after a restart (``rate()`` and
``increase()`` handle the reset), and quantiles and checks describe the current
generation only. Workers of an old generation still draining keep their own
files, which fold into their generation's file when they exit.

One directory per host (worker liveness is read from process ids), created by the
user, not shared between different applications.

The live feature references (kilobytes to megabytes) are written once per
directory, content-addressed (``reference-<digest>.json``), not in every periodic
snapshot, and each worker's sampled live windows (most of its bytes) go to
``windows-<pid>-<token>-<generation>.json`` beside its file, which names it: the
judgement reads them, a scrape does not, ``ServingState.load`` (and ``silenttax.load``)
reads them back, and a fold takes both files into the archive.

**Judged once per fleet, not at every scrape.** Counts, histograms and quantiles are
read fresh at each scrape. The fleet's *judgement* — its ``check()`` findings and the
live windows' null rates and drift scores, which need the sampled windows of every
worker merged and tested (tens of milliseconds with live features) — is written to
``judgement.json`` by whichever worker's writer thread finds it older than
``check_interval`` (:func:`judge_directory`), off the request path; a scrape reads
it, and judges inline only when no writer has for three intervals
(:func:`judgement`). So a scrape costs O(live workers) file reads and merges of
counters and sketches, and the fleet pays for one judgement per interval, whatever
the scrape rate.

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
import hashlib
import json
import os
import re
import secrets
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from silenttax._system import background
from silenttax.errors import InputError, SilentTaxError
from silenttax.report import Report

__all__ = [
    "ARCHIVE",
    "GENERATION",
    "JUDGEMENT",
    "KEEP_GENERATIONS",
    "FleetBacklog",
    "FleetJudgement",
    "SnapshotWriter",
    "fold_dead",
    "generation_id",
    "judge_directory",
    "judgement",
    "previous_generation",
    "read_directory",
]

ARCHIVE = "archive.json"
"""The file the current generation's dead workers are folded into."""
GENERATION = "generation.json"
"""The directory's current generation: ``{"id", "owner", "owner_started", "since"}``."""
GENERATIONS = "generations"
"""The folder of retired generations, one merged snapshot each."""
KEEP_GENERATIONS = 5
"""Retired generations kept (the oldest are deleted)."""
JUDGEMENT = "judgement.json"
"""The fleet's latest judgement (:class:`FleetJudgement`), refreshed by the writers."""
_LOCK = ".silenttax.lock"
_JUDGE_LOCK = ".silenttax.judge.lock"
_WINDOWS = ("health", "health_previous", "drift", "drift_previous")
_PATTERN = "worker-*.json"
_STALE_TEMP = 3600.0  # a temp file this old was left by a killed writer
_HOLD = 0.05  # seconds one fold holds the directory lock (a scrape waits at most this)
_FOLDING: set[Path] = set()  # folders a background fold runs on in this process
_FOLDING_LOCK = threading.Lock()
_SERVERS = re.compile(r"(gunicorn|uvicorn|hypercorn|granian|daphne|litserve)\b")
_SPAWNED = ("multiprocessing.spawn", "multiprocessing.forkserver")


def _worker_pid(path: Path) -> int | None:
    parts = path.stem.split("-")
    return int(parts[1]) if len(parts) in (3, 4) and parts[1].isdigit() else None


def _file_generation(path: Path) -> str:
    """The generation in a worker file's name ("" for files of older versions)."""
    parts = path.stem.split("-")
    return parts[3] if len(parts) == 4 else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _program(cmdline: list[str]) -> str:
    """The program a command line runs: ``gunicorn`` for ``python /venv/bin/gunicorn ...``,
    ``uvicorn`` for ``python -m uvicorn ...``, the process title otherwise."""
    args = list(cmdline)
    if args and os.path.basename(args[0]).startswith("python"):
        args = args[1:]
        while args and args[0].startswith("-") and args[0] != "-m":
            args = args[1:]
        if args[:1] == ["-m"]:
            args = args[1:]
    return os.path.basename(args[0]) if args else ""


def _server_process() -> Any:
    """The process whose lifetime is the server's: climb from this process to its parent
    while this one is a forked copy of it, was spawned by multiprocessing, or the parent
    is a known server (gunicorn, uvicorn, hypercorn, granian, daphne, LitServe)."""
    import psutil

    proc = psutil.Process()
    for _ in range(3):
        try:
            parent = proc.parent()  # the master may be PID 1, as in a container
            if parent is None or parent.pid == 0:
                return proc
            mine, theirs = proc.cmdline(), parent.cmdline()
        except psutil.Error:
            return proc
        spawned = any(marker in " ".join(mine) for marker in _SPAWNED)
        if not (mine == theirs or spawned or _SERVERS.match(_program(theirs))):
            return proc
        proc = parent
    return proc


def generation_id() -> tuple[str, int | None, float | None]:
    """This server's generation: ``(id, owner pid, owner start time)``.

    ``SILENTTAX_GENERATION`` (letters, digits, ``.`` and ``_``) names it where set (a
    deploy id; no owner: a new id takes over at once); otherwise it is the server
    process's pid and start time (see the module docs).

    Examples:
        >>> ident, pid, started = generation_id()
        >>> "-" in ident, pid is None or pid > 0
        (False, True)
    """
    named = os.environ.get("SILENTTAX_GENERATION", "").strip()
    if named:
        clean = re.sub(r"[^A-Za-z0-9_.]", "_", named)[:64]
        return clean, None, None
    try:
        proc = _server_process()
        started = float(proc.create_time())
        return f"{proc.pid}s{int(started * 1000)}", int(proc.pid), started
    except Exception:  # no psutil answer: this process is the server
        return f"{os.getpid()}p{secrets.token_hex(3)}", os.getpid(), None


def _owner_alive(record: dict[str, Any]) -> bool:
    import psutil

    pid = record.get("owner")
    if not isinstance(pid, int):
        return False  # a named generation has no process: the next one takes over
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True
    wanted = record.get("owner_started")
    return not isinstance(wanted, int | float) or abs(started - wanted) < 1.0


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


def _current(folder: Path) -> dict[str, Any] | None:
    """The directory's generation record (None: none written yet, or unreadable)."""
    try:
        record = json.loads((folder / GENERATION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("id"), str) else None


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
        self.errors = 0
        """Writes that failed (counted, never raised into a request)."""
        self.judge_every: float | None = None
        """Seconds between fleet judgements (:func:`judge_directory`) this writer's thread
        makes when no other worker's has (None: it never judges; set by
        :meth:`SilentTaxCollector.from_directory
        <silenttax.integrations.prometheus.SilentTaxCollector.from_directory>`)."""
        self._stop = threading.Event()
        self._closed = False
        self._write_lock = threading.Lock()  # a write never replaces a newer one
        # field -> (id of the live reference, its shared file, its state)
        self._references: dict[str, tuple[int, str, Any]] = {}
        self._new_generation()
        ref = weakref.ref(self)

        def after_fork() -> None:
            writer = ref()
            if writer is not None:
                writer.thread = None
                writer._stop = threading.Event()
                writer._closed = False
                writer._write_lock = threading.Lock()
                writer._new_generation()

        os.register_at_fork(after_in_child=after_fork)
        atexit.register(_close_at_exit, ref)

    def _new_generation(self) -> None:
        self.generation, self._owner, self._owner_started = generation_id()
        """This worker's generation (see the module docs)."""
        self._joined = False
        token = secrets.token_hex(4)
        self.path = self.folder / f"worker-{os.getpid()}-{token}-{self.generation}.json"

    def start(self) -> None:
        """Start writing every ``interval`` seconds (idempotent)."""
        if self.thread is not None:
            return
        middleware = self._middleware()
        timing = None if middleware is None else middleware.self_time
        self.thread = background(self, SnapshotWriter._tick, self.interval, self._stop,
                                 "silenttax-snapshots", SnapshotWriter._failed,
                                 timing)  # fmt: skip

    def _tick(self) -> None:
        """The periodic write, then the dead workers' files folded (so a scrape seldom
        meets one: it would fold them itself), then the fleet judged when it is due."""
        self.write()
        fold_dead(self.folder)
        if self.judge_every is not None:
            middleware = self._middleware()
            own = middleware if middleware is not None and middleware.checks else None
            _judge_when_due(self.folder, self.judge_every, own=own)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1

    @property
    def windows_path(self) -> Path:
        """Where this worker keeps its live features' sampled windows (beside its file)."""
        return _windows_file(self.path)

    def write(self, *, windows: bool = True, durable: bool = True) -> Path:
        """Write the snapshot now (joining this worker's generation first); returns its path.

        Args:
            windows: Write the live features' sampled windows too (False: the counters,
                sketches and spans only, as a scrape needs them — the windows file
                keeps the previous write's).
            durable: fsync the file (False: the write a scrape makes first, read back
                from the page cache at once, and made durable by the next periodic one).
        """
        middleware = self._middleware()
        if middleware is None:
            raise InputError("the middleware of this SnapshotWriter is gone")
        with self._write_lock:
            if not self._joined:
                self._joined = _join(self.folder, self.generation, self._owner,
                                     self._owner_started)  # fmt: skip
            state = middleware.state(references=False)
            update: dict[str, Any] = {"workers": [self.path.name], "generation": self.generation}
            shared = self._shared_references(middleware)
            references = {field: name for field, (name, _) in shared.items()}
            live = state.live
            if live is not None:  # the windows (most of the bytes) in a file of their own
                if windows or not self.windows_path.exists():
                    _write_text(self.windows_path, live.model_dump_json())
                references["live"] = self.windows_path.name
                update["live"] = live.model_copy(update=dict.fromkeys(_WINDOWS))
            if references:
                update["references"] = references
            stripped = state.model_copy(update=update)
            written: Path = stripped.save(self.path, durable=durable)
            # a scrape served by this worker reads its own file next: no need to parse it
            held = {f: state for f, (_, state) in shared.items()}
            key = _stat_key(written)
            with _PARSED_LOCK:
                _PARSED[(written, False)] = (key, stripped.model_copy(update=held))
                if windows:
                    whole = state.model_copy(update={**update, **held, "live": live})
                    _PARSED[(written, True)] = (key, whole)
        return written

    def _shared_references(self, middleware: Any) -> dict[str, tuple[str, Any]]:
        """Field -> (content-addressed file, state) of each live reference: the file is
        written once per directory, and the state is put in the cache its readers use (so
        no worker of this app parses the shared files it wrote)."""
        live = middleware.live
        out: dict[str, tuple[str, Any]] = {}
        if live is None:
            return out
        for field, component in (("health_reference", live.health),
                                 ("drift_reference", live.drift)):  # fmt: skip
            if component is None:
                continue
            known = self._references.get(field)
            if known is None or known[0] != id(component):
                state = component.state()
                text = state.to_json()
                name = f"reference-{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"
                if not (self.folder / name).exists():
                    state.save(self.folder / name)
                _remember_reference(state, self.folder / name)
                known = (id(component), name, state)
                self._references[field] = known
            out[field] = known[1:]
        return out

    def close(self) -> None:
        """The last write, then fold this worker's file into its generation's archive."""
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
        with _locked(self.folder):
            _fold(self.folder, [self.path])


def _close_at_exit(ref: weakref.ref[SnapshotWriter]) -> None:
    writer = ref()
    if writer is not None and writer.path.name.startswith(f"worker-{os.getpid()}-"):
        with contextlib.suppress(Exception):
            writer.close()


def _join(folder: Path, generation: str, owner: int | None, started: float | None) -> bool:
    """Make ``generation`` the directory's current one if it is, or if the current one's
    server is gone (retiring it); True when ``generation`` is current."""
    with _locked(folder):
        record = _current(folder)
        if record is not None and record["id"] == generation:
            return True
        if record is not None and _owner_alive(record):
            return False  # the previous server still runs: its scrapes stay its own
        if record is not None:
            _retire(folder, str(record["id"]))
        elif (folder / ARCHIVE).exists():
            _retire(folder, "unnamed")  # written by a silenttax without generations
        record = {"id": generation, "owner": owner, "owner_started": started,
                  "since": time.time()}  # fmt: skip
        tmp = folder / f".{GENERATION}.{secrets.token_hex(4)}"
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, folder / GENERATION)
        return True


def _retire(folder: Path, generation: str) -> None:
    """Move the current generation's archive (and its dead workers' files) into
    ``generations/`` (lock held)."""
    dead = [
        p
        for p in sorted(folder.glob(_PATTERN))
        if _file_generation(p) in (generation, "") and not _alive(_worker_pid(p) or 0)
    ]
    _fold(folder, dead, target=folder / ARCHIVE)
    archive = folder / ARCHIVE
    if not archive.exists():
        return
    from silenttax.integrations.asgi import SilentTaxMiddleware

    retired = folder / GENERATIONS
    retired.mkdir(exist_ok=True)
    target = retired / f"{generation}.json"
    state = _read_counts_at_least(archive)  # references read back: the file stands alone
    if target.exists():  # an old generation's late worker folded there already
        state = SilentTaxMiddleware.from_state(_read(target)).merge(state).state()
    state.model_copy(update={"workers": [], "references": {}}).save(target)
    _remove(archive)
    kept = sorted(retired.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for old in kept[:-KEEP_GENERATIONS]:
        old.unlink(missing_ok=True)


def _target(folder: Path, path: Path) -> Path:
    """The archive a worker file folds into: the current generation's or a retired one's."""
    record = _current(folder)
    generation = _file_generation(path)
    if record is None or generation in ("", record["id"]):
        return folder / ARCHIVE
    (folder / GENERATIONS).mkdir(exist_ok=True)
    return folder / GENERATIONS / f"{generation}.json"


_PARSED: dict[tuple[Path, bool], tuple[tuple[int, int, int], Any]] = {}
_PARSED_LOCK = threading.Lock()


def _stat_key(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _windows_file(path: Path) -> Path:
    """The live windows' file of worker file ``path``."""
    return path.with_name("windows-" + path.name.removeprefix("worker-"))


def _write_text(path: Path, text: str) -> None:
    """Replace ``path`` atomically (temp file, rename; no fsync: a cache, not a record)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _remove(path: Path) -> None:
    """A worker file and its windows file."""
    path.unlink(missing_ok=True)
    _windows_file(path).unlink(missing_ok=True)


def _remember_reference(state: Any, path: Path) -> None:
    """Put a reference state this process wrote into the cache its readers use."""
    from silenttax.integrations.asgi import _REFERENCES

    _REFERENCES[(state.KIND, str(path))] = state


def _read(path: Path, *, windows: bool = True) -> Any:
    """A snapshot file, parsed (a file unchanged since the last scrape in this process is
    not parsed again: every write replaces the file, so its inode, time or size differ;
    a worker writes its windows file before the file naming it)."""
    from silenttax.integrations.asgi import ServingState

    key = _stat_key(path)
    with _PARSED_LOCK:
        known = _PARSED.get((path, windows))
    if known is not None and known[0] == key:
        return known[1]
    state = ServingState.load(path, windows=windows)
    with _PARSED_LOCK:
        if len(_PARSED) > 4096:
            _PARSED.clear()
        _PARSED[(path, windows)] = (key, state)
    return state


def _read_counts_at_least(path: Path) -> Any:
    """A worker file with its live windows, or without them when their file is unreadable
    (the counts are never lost for the windows). Not cached: a fold reads a file once."""
    from silenttax.integrations.asgi import ServingState

    try:
        return ServingState.load(path)
    except SilentTaxError:
        return ServingState.load(path, windows=False)  # raises when the counts are unreadable


# archive path -> (its stat key when written, the merged middleware, the files it names)
_Written = dict[Path, tuple[tuple[int, int, int], Any, list[str]]]


def _fold(
    folder: Path,
    paths: list[Path],
    *,
    target: Path | None = None,
    deadline: float | None = None,
    written: _Written | None = None,
) -> int:
    """Fold worker files into their generation's archive (lock held); returns how many.
    With a ``deadline`` (``time.perf_counter()``) each archive takes what it can fold
    by then (at least one file); the rest stay for the next fold. ``written`` carries
    the archives this process wrote from one fold to the next (not parsed again while
    their file is the one written)."""
    groups: dict[Path, list[Path]] = {}
    for path in paths:
        groups.setdefault(target or _target(folder, path), []).append(path)
    return sum(
        _fold_into(archive, group, deadline, {} if written is None else written)
        for archive, group in groups.items()
    )


def _fold_into(
    archive_path: Path, paths: list[Path], deadline: float | None, written: _Written
) -> int:
    from silenttax.integrations.asgi import SilentTaxMiddleware

    folder = paths[0].parent if paths else archive_path.parent
    mine = written.pop(archive_path, None)  # put back only once written again
    archive: Any = None
    held: set[str] = set()
    if mine is not None and archive_path.exists() and _stat_key(archive_path) == mine[0]:
        archive, held = mine[1], set(mine[2])
    elif archive_path.exists():
        archive = SilentTaxMiddleware.from_state(_read_counts_at_least(archive_path))
        held = set(archive.state().workers)
    # files an interrupted fold already merged: delete them, never merge them again
    for name in held:
        _remove(folder / name)
    folded: list[str] = []
    references: dict[str, str] = {}
    for path in paths:
        if path.name in held or not path.exists():
            continue
        if folded and deadline is not None and time.perf_counter() >= deadline:
            break
        try:
            state = _read_counts_at_least(path)
        except SilentTaxError:
            path.rename(path.with_name(f"unreadable-{path.name}"))
            continue
        archive = SilentTaxMiddleware.from_state(state) if archive is None else archive.merge(state)
        folded.append(path.name)
        references = {k: v for k, v in state.references.items() if k != "live"}
    if archive is None:
        return 0
    if folded or held:
        beside = archive_path.parent == folder  # the live archive, not a retired one
        shared = references and beside  # the reference files lie beside it
        final = archive.state(references=not shared).model_copy(
            update={"workers": folded, "references": references if shared else {}}
        )
        if beside and final.live is not None:  # its windows in a file of their own too
            windows = _windows_file(archive_path)
            _write_text(windows, final.live.model_dump_json())
            final = final.model_copy(update={
                "live": final.live.model_copy(update=dict.fromkeys(_WINDOWS)),
                "references": {**final.references, "live": windows.name},
            })  # fmt: skip
        final.save(archive_path)
        for name in folded:
            _remove(folder / name)
        written[archive_path] = (_stat_key(archive_path), archive, folded)
    return len(folded)


def fold_dead(directory: str | os.PathLike[str]) -> int:
    """Fold the snapshot files of workers that are no longer running into their
    generation's archive (and remove temp files left by killed writers); returns how
    many were folded.

    Examples:
        >>> import tempfile
        >>> fold_dead(tempfile.mkdtemp())
        0
    """
    return _fold_dead(_folder(directory))[0]


def _fold_dead(folder: Path, *, sweep: bool = True, budget: float | None = None) -> tuple[int, int]:
    """Fold dead workers' files, ``_HOLD`` seconds of folding per hold of the directory
    lock (a scrape in another worker waits for one hold, not for a whole backlog);
    with a ``budget`` (seconds) stop when it is spent. Returns how many were folded and
    how many dead files are left (0 without a budget)."""
    if sweep:
        _sweep(folder)
    dead = [p for p in sorted(folder.glob(_PATTERN)) if (pid := _worker_pid(p)) and not _alive(pid)]
    end = None if budget is None else time.perf_counter() + budget
    folded = 0
    written: _Written = {}
    while dead:
        now = time.perf_counter()
        if end is not None and now >= end:
            break
        hold = now + _HOLD if end is None else min(now + _HOLD, end)
        with _locked(folder):
            live = [p for p in dead if p.exists()]
            folded += _fold(folder, live, deadline=hold, written=written)
        dead = [p for p in dead if p.exists()]
    return folded, len(dead)


def _fold_in_background(folder: Path) -> None:
    """Fold the dead workers' files in a thread of this process (one per folder)."""
    with _FOLDING_LOCK:
        if folder in _FOLDING:
            return
        _FOLDING.add(folder)

    def run() -> None:
        try:
            _fold_dead(folder, sweep=False)
        except Exception:  # a background thread never raises into the host
            pass  # the files stay: the next scrape folds them and reports what fails
        finally:
            with _FOLDING_LOCK:
                _FOLDING.discard(folder)

    threading.Thread(target=run, name="silenttax-fold", daemon=True).start()


def _sweep(folder: Path) -> None:
    """Remove temp files left by killed writers, and windows files whose worker is gone."""
    now = time.time()
    for tmp in [*folder.glob(".worker-*"), *folder.glob(".windows-*")]:
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > _STALE_TEMP:
                tmp.unlink()
    for orphan in folder.glob("windows-*.json"):  # its worker file folded, or never written
        worker = orphan.with_name("worker-" + orphan.name.removeprefix("windows-"))
        if not worker.exists() and (pid := _worker_pid(orphan)) and not _alive(pid):
            orphan.unlink(missing_ok=True)


def previous_generation(directory: str | os.PathLike[str]) -> Path | None:
    """The latest retired generation's merged snapshot in ``directory`` (None: none yet):
    ``silenttax.load(path)`` reads it, e.g. as the baseline of the current deploy.

    Examples:
        >>> import tempfile
        >>> previous_generation(tempfile.mkdtemp()) is None
        True
    """
    folder = _folder(directory) / GENERATIONS
    if not folder.is_dir():
        return None
    retired = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return retired[-1] if retired else None


class FleetBacklog(SilentTaxError):
    """More dead workers' files than a bounded read may fold (after a mass crash): the
    fleet's totals would be short of them, so none are given; a background thread of
    this process folds the rest."""

    def __init__(self, files: int) -> None:
        super().__init__(f"{files} dead workers' snapshot files are being folded")
        self.files = files
        """Dead workers' files left to fold."""


def read_directory(
    directory: str | os.PathLike[str],
    *,
    own: Any = None,
    windows: bool = True,
    fold_budget: float | None = None,
) -> Any:
    """The fleet's current generation: every worker's snapshot in ``directory`` and the
    archive, merged into one ``SilentTaxMiddleware`` (to export or check). Dead workers
    are folded first.

    Args:
        directory: Where the workers write.
        own: The calling worker's middleware: it writes its file first, so the result
            is exact for it (and never ahead of what a later scrape reads).
        windows: Merge the live features' sampled windows too (False: their counters
            only — what a scrape exports fresh; the judgement of the windows is read
            from :func:`judgement`).
        fold_budget: Seconds this call may spend folding dead workers' files (None:
            all of them, however long). A scrape passes one, so that a backlog after a
            mass crash (hundreds of files, a few milliseconds each) never stalls the
            worker serving it.

    Raises:
        FleetBacklog: Dead workers' files are left after ``fold_budget``; a background
            thread folds them (a later call succeeds).
        InputError: ``directory`` is not a directory, or the snapshots were written with
            different settings.
    """
    from silenttax.integrations.asgi import ServingState, SilentTaxMiddleware

    folder = _folder(directory)
    if own is not None and own.writer is not None and own.writer.folder == folder:
        own.writer.write(windows=windows, durable=False)
    if fold_budget is not None:
        with _FOLDING_LOCK:
            if folder in _FOLDING:  # this process's thread folds them: only count them
                fold_budget = 0.0
    # the writers' ticks sweep temp and orphan files
    left = _fold_dead(folder, sweep=False, budget=fold_budget)[1]
    if left:
        _fold_in_background(folder)
        raise FleetBacklog(left)
    states: list[ServingState] = []
    with _locked(folder):  # a consistent view: no fold moves files while they are read
        record = _current(folder)
        current = record["id"] if record is not None else None
        archive_path = folder / ARCHIVE
        held: set[str] = set()
        if archive_path.exists():
            archive = _read(archive_path, windows=windows)
            held = set(archive.workers)
            states.append(archive)
        for path in sorted(folder.glob(_PATTERN)):
            other = current is not None and _file_generation(path) not in ("", current)
            if path.name in held or other:
                continue
            try:
                states.append(_read(path, windows=windows))
            except SilentTaxError:
                continue  # a file of another kind or version: left for a person to look at
    if not windows:
        states = [_without_windows(state) for state in states]
    if not states:
        return SilentTaxMiddleware(_nothing)
    fleet = SilentTaxMiddleware.from_state(states[0])
    for state in states[1:]:
        fleet.merge(state)
    if own is not None:
        fleet.checks = list(own.checks)  # functions are code: the worker's own, not saved
    return fleet


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    return None


def _without_windows(state: Any) -> Any:
    """A snapshot with the live features' counters but not their sampled windows."""
    if state.live is None:
        return state
    return state.model_copy(update={"live": state.live.model_copy(update=dict.fromkeys(_WINDOWS))})


class FleetJudgement(BaseModel):
    """The fleet's judgement at one moment: what a scrape exports besides counts."""

    model_config = ConfigDict(frozen=True)

    at: float
    """When it was judged (Unix seconds)."""
    generation: str | None
    """The generation judged (a judgement of another one is never served)."""
    report: Report
    """The merged fleet's ``check()``."""
    null_rates: dict[str, float]
    """Feature -> share of nulls in the live windows (empty without live features)."""
    drift: dict[str, tuple[str, float]]
    """Feature -> (metric, effect size) of the live drift check."""


def judge_directory(directory: str | os.PathLike[str], *, own: Any = None) -> FleetJudgement:
    """Judge the fleet now (every worker's snapshot merged, its live windows included)
    and write ``judgement.json`` for the scrapes that follow; returns the judgement.

    Examples:
        >>> import tempfile
        >>> len(judge_directory(tempfile.mkdtemp()).report)
        0
    """
    folder = _folder(directory)
    fleet = read_directory(folder, own=own)
    record = _current(folder)
    live = fleet.live
    judged = FleetJudgement(
        at=time.time(),
        generation=None if record is None else str(record["id"]),
        report=fleet.check(),
        null_rates={} if live is None else live.null_rates(),
        drift={} if live is None else live.drift_scores(),
    )
    tmp = folder / f".{JUDGEMENT}.{secrets.token_hex(4)}"
    tmp.write_text(judged.model_dump_json(), encoding="utf-8")
    os.replace(tmp, folder / JUDGEMENT)
    return judged


def _cached_judgement(folder: Path) -> FleetJudgement | None:
    """``judgement.json`` if it judged the current generation (None: missing, unreadable
    or of another generation)."""
    path = folder / JUDGEMENT
    try:
        key = _stat_key(path)
        with _PARSED_LOCK:
            known = _PARSED.get((path, True))
        if known is not None and known[0] == key:
            judged = known[1]
        else:
            judged = FleetJudgement.model_validate_json(path.read_bytes())
            with _PARSED_LOCK:
                _PARSED[(path, True)] = (key, judged)
    except (OSError, ValueError):
        return None
    record = _current(folder)
    current = None if record is None else str(record["id"])
    return judged if judged.generation == current else None


def judgement(
    directory: str | os.PathLike[str], *, own: Any = None, max_age: float = 15.0
) -> FleetJudgement:
    """The fleet's latest judgement: ``judgement.json`` when it is at most ``max_age``
    seconds old, else judged now (:func:`judge_directory`).

    Examples:
        >>> import tempfile
        >>> judgement(tempfile.mkdtemp()).null_rates
        {}
    """
    folder = _folder(directory)
    judged = _cached_judgement(folder)
    if judged is not None and time.time() - judged.at <= max_age:
        return judged
    return judge_directory(folder, own=own)


def _judge_when_due(folder: Path, every: float, *, own: Any = None) -> None:
    """Judge the fleet if no worker has in ``every`` seconds (one worker at a time: the
    others skip while one judges)."""
    judged = _cached_judgement(folder)
    if judged is not None and time.time() - judged.at < every:
        return
    with open(folder / _JUDGE_LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another worker judges now
        try:
            judged = _cached_judgement(folder)  # judged while this one waited?
            if judged is None or time.time() - judged.at >= every:
                judge_directory(folder, own=own)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
