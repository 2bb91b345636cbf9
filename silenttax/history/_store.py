"""The history store: every snapshot kept in one SQLite file, its figures extracted.

Tables (schema version ``SCHEMA_VERSION``, in ``PRAGMA user_version``):

- ``snapshot(id, at, res, kind, labels, version, z)``: the snapshot itself, zlib JSON
  (a raw snapshot is deleted after a day, its figures packed: its hour and day are
  rolled up);
  ``res`` 0 as appended, 3600 / 86400 for the hourly and daily rollups :meth:`compact`
  builds by merging (never averaging).
- ``series(id, name, kind, labels, unit)`` and ``point(series, at, res, value, lo, hi, n,
  snapshot)``: the figures extracted from each snapshot (:mod:`._extract`), one row
  per figure, with its interval.
- ``zdict(id, kind, d)``: a zlib dictionary per kind (the first 32 KiB of the first
  snapshot of that kind); a blob starting with byte 1 is ``1, id (4 bytes), zlib
  stream with that dictionary`` (the keys, settings and layout every snapshot of a kind
  repeats: a LatencyMonitor window 755 -> ~340 bytes), one starting with ``x`` plain zlib.
- ``chunk(series, res, day, z)``: the raw and hourly figures of a closed day, packed
  per series (:mod:`._pack`, ~8 bytes a figure instead of ~60 as rows);
  :meth:`History.compact` moves them there, and deletes the raw snapshots it has
  emptied. Daily figures stay rows.
- ``finding(at, labels, code, severity, subject, value, json)``: the findings of every
  appended Report.
- ``marker(at, kind, labels, meta)``: deploys, versions, environment changes.

SQLite in WAL mode: one writer at a time, readers never blocked; every write is one
``BEGIN IMMEDIATE`` transaction retried while another process holds the lock (up to
``timeout``), so many writer processes (a gunicorn fleet, cron jobs) lose no append.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import threading
import time
import weakref
import zlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from silenttax._version import __version__
from silenttax.errors import InputError, StateError
from silenttax.history._extract import EXTRACTOR_VERSION, extract
from silenttax.history._pack import PackedPoint, pack, unpack
from silenttax.history._slim import slim
from silenttax.history._track import Tracker

__all__ = ["DAY", "HOUR", "RETENTION", "SCHEMA_VERSION", "History", "Marker", "Series", "open"]

SCHEMA_VERSION = 2
"""The store's layout (``PRAGMA user_version``; 2 added ``chunk`` and ``zdict``); a newer file
fails with a StateError, an older one is brought up to date when opened."""
HOUR, DAY = 3600.0, 86400.0
RESOLUTIONS = {"raw": 0.0, "1h": HOUR, "1d": DAY}
RETENTION: dict[str, float | None] = {
    "raw": 7 * DAY,
    "raw_snapshots": DAY,
    "1h": 90 * DAY,
    "1d": None,
}
"""How long each resolution is kept (seconds; None: forever): the figures of raw snapshots
7 days, the raw snapshots themselves 1 day (rolled up within the hour; kept a day for a
``state()`` over the last minutes and for ``reextract()``), hourly rollups 90 days, daily
ones forever."""
_ZDICT = 32768  # zlib looks back 32 KiB: a longer dictionary is not used
_COMPACTED = ("1h", "1d", "dropped", "emptied", "packed", "dropped_days")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot(
    id INTEGER PRIMARY KEY, at REAL NOT NULL, res REAL NOT NULL, kind TEXT NOT NULL,
    labels TEXT NOT NULL, version TEXT NOT NULL, z BLOB);
CREATE INDEX IF NOT EXISTS snapshot_by_stream ON snapshot(kind, labels, res, at);
CREATE TABLE IF NOT EXISTS series(
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, labels TEXT NOT NULL,
    unit TEXT NOT NULL, UNIQUE(name, kind, labels));
CREATE TABLE IF NOT EXISTS point(
    series INTEGER NOT NULL, at REAL NOT NULL, res REAL NOT NULL, value REAL NOT NULL,
    lo REAL, hi REAL, n INTEGER, snapshot INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS point_by_series ON point(series, res, at);
CREATE INDEX IF NOT EXISTS point_by_snapshot ON point(snapshot);
CREATE TABLE IF NOT EXISTS finding(
    id INTEGER PRIMARY KEY, at REAL NOT NULL, labels TEXT NOT NULL, code TEXT NOT NULL,
    severity TEXT NOT NULL, subject TEXT NOT NULL, value REAL, json TEXT NOT NULL,
    snapshot INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS finding_by_at ON finding(at);
CREATE TABLE IF NOT EXISTS marker(
    id INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, labels TEXT NOT NULL,
    meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS zdict(
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL UNIQUE, d BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chunk(
    series INTEGER NOT NULL, res REAL NOT NULL, day REAL NOT NULL, z BLOB NOT NULL,
    PRIMARY KEY(series, res, day));
"""

_ENVIRONMENT = "silenttax.environment"
_FINGERPRINT_FIELDS = ("python", "platform", "cpu_model", "packages", "accelerators", "runtimes")


class Marker(NamedTuple):
    """A dated event: a deploy, a version, an environment change."""

    at: float
    kind: str
    labels: dict[str, str]
    meta: dict[str, Any]

    @property
    def when(self) -> str:
        """``at`` as an ISO date (UTC)."""
        return _iso(self.at)


class Series:
    """One figure over time: epoch seconds, values, 95% intervals (None where the figure
    has none), counts behind each value, and the resolution (``raw``, ``1h``, ``1d``).

    Examples:
        >>> s = Series("latency.p99", {}, "s", [0.0, 86400.0], [0.020, 0.021])
        >>> len(s), s.values[-1]
        (2, 0.021)
    """

    __slots__ = ("hi", "labels", "lo", "n", "name", "resolution", "times", "unit", "values")

    def __init__(
        self,
        name: str,
        labels: dict[str, str],
        unit: str,
        times: list[float],
        values: list[float],
        lo: list[float | None] | None = None,
        hi: list[float | None] | None = None,
        n: list[int | None] | None = None,
        resolution: str = "raw",
    ) -> None:
        self.name, self.labels, self.unit, self.resolution = name, labels, unit, resolution
        self.times, self.values = times, values
        none: list[Any] = [None] * len(times)
        self.lo: list[float | None] = lo if lo is not None else list(none)
        self.hi: list[float | None] = hi if hi is not None else list(none)
        self.n: list[int | None] = n if n is not None else list(none)

    def __repr__(self) -> str:
        return f"Series({self.name!r}, {self.labels!r}, {len(self)} {self.resolution} points)"

    def __len__(self) -> int:
        return len(self.times)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready columns."""
        return {
            "name": self.name,
            "labels": self.labels,
            "unit": self.unit,
            "resolution": self.resolution,
            "times": self.times,
            "values": self.values,
            "lo": self.lo,
            "hi": self.hi,
            "n": self.n,
        }


def _iso(at: float) -> str:
    from datetime import UTC

    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _epoch(at: float | datetime | None, name: str = "at") -> float:
    if at is None:
        return time.time()
    if isinstance(at, datetime):
        return at.timestamp()
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise InputError(f"{name} must be a datetime or epoch seconds, got {at!r}")
    return float(at)


def _since(value: float | datetime | str | None, now: float) -> float | None:
    """``since=``: a datetime, epoch seconds, or a span back from now (``"90d"``, ``"12h"``)."""
    if value is None:
        return None
    if isinstance(value, str):
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([hdw])", value.strip())
        if not m:
            raise InputError(f"since: need e.g. '90d', '12h', '4w', got {value!r}")
        unit = {"h": HOUR, "d": DAY, "w": 7 * DAY}[m.group(2)]
        return now - float(m.group(1)) * unit
    return _epoch(value, "since")


def _labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (labels or {}).items():
        if not isinstance(key, str) or not _LABEL.fullmatch(key):
            raise InputError(f"labels: {key!r} is not an identifier")
        if value is None or isinstance(value, dict | list):
            raise InputError(f"labels: {key!r} must be a string or a number, got {value!r}")
        out[key] = str(value)
    return dict(sorted(out.items()))


def _key(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"))


def _as_state(obj: Any) -> Any:
    """A snapshot from a State, a Stateful component, a Report, JSON text or a dict."""
    from silenttax._registry import load
    from silenttax._state import State

    if isinstance(obj, State):
        return obj
    state = getattr(obj, "state", None)
    if callable(state):
        got = state()
        if isinstance(got, State):
            return got
    if isinstance(obj, str | bytes | dict):
        try:
            return _as_state(load(obj))
        except Exception as exc:
            raise InputError(f"snapshot: cannot read it ({exc})") from exc
    raise InputError(
        f"snapshot: need a silenttax snapshot, component or Report, got {type(obj).__name__}"
    )


def _is_audit(obj: Any) -> bool:
    """An audit's result (``silenttax.audit.Audit``: a report and its snapshots)."""
    return isinstance(getattr(obj, "snapshots", None), dict) and hasattr(obj, "manifest")


def _fingerprint(state: Any) -> str:
    import hashlib

    data = state.model_dump(mode="json")
    keep = {k: data.get(k) for k in _FINGERPRINT_FIELDS}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _matches(labels: Mapping[str, str], filters: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in filters.items())


class History:
    """A history store (see :func:`open`)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = float(timeout)
        deadline = time.monotonic() + self.timeout
        while True:  # many processes opening one file at once: retried while it is locked
            try:
                self._db = self._connect()
                break
            except sqlite3.OperationalError as exc:
                locked = "locked" in str(exc) or "busy" in str(exc)
                if not locked or time.monotonic() > deadline:
                    raise StateError(f"{str(self.path)!r}: not a history store ({exc})") from exc
                time.sleep(0.01)
            except sqlite3.Error as exc:
                raise StateError(f"{str(self.path)!r}: not a history store ({exc})") from exc
        self._lock = threading.RLock()
        self._series: dict[tuple[str, str, str], int] = {}
        self._compacted_hour: float | None = None
        self._compacting: threading.Thread | None = None
        self._trackers: weakref.WeakSet[Tracker] = weakref.WeakSet()
        self._zdict_ids: dict[str, int] = {}
        self._zdicts: dict[int, bytes] = {}
        self._migrate()

    # ------------------------------------------------------------------ plumbing
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=min(self.timeout, 5.0), isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        try:
            if int(db.execute("PRAGMA page_count").fetchone()[0]) == 0:
                # a new file gives freed pages back (set before WAL writes the header)
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    def _migrate(self) -> None:
        try:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{str(self.path)!r}: not a history store ({exc})") from exc
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{str(self.path)!r} is a history store of schema version {version}; this "
                f"silenttax ({__version__}) reads up to version {SCHEMA_VERSION}: upgrade it"
            )
        if version == SCHEMA_VERSION:
            return
        with self._write("EXCLUSIVE") as db:
            if int(db.execute("PRAGMA user_version").fetchone()[0]) < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _write(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One write transaction, retried while another writer holds the lock."""
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        with self._lock:
            while True:
                try:
                    self._db.execute(f"BEGIN {mode}")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    if time.monotonic() > deadline:
                        raise StateError(
                            f"{str(self.path)!r}: still locked by another writer after "
                            f"{self.timeout:g} s"
                        ) from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                # ids read or made in it may be gone with it (another writer can take them)
                self._series.clear()
                self._zdict_ids.clear()
                self._zdicts.clear()
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the file (after a compaction under way, and the last window of every
        :meth:`track`)."""
        for tracker in list(self._trackers):
            tracker.stop()
        running = self._compacting
        if running is not None:
            running.join(timeout=60)
        with self._lock:
            self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _series_id(
        self, db: sqlite3.Connection, name: str, kind: str, labels: str, unit: str
    ) -> int:
        key = (name, kind, labels)
        got = self._series.get(key)
        if got is None:
            db.execute(
                "INSERT OR IGNORE INTO series(name, kind, labels, unit) VALUES (?, ?, ?, ?)",
                (name, kind, labels, unit),
            )
            got = int(db.execute(
                "SELECT id FROM series WHERE name = ? AND kind = ? AND labels = ?",
                (name, kind, labels),
            ).fetchone()[0])  # fmt: skip
            self._series[key] = got
        return got

    def _insert(
        self,
        db: sqlite3.Connection,
        state: Any,
        at: float,
        res: float,
        labels: dict[str, str],
        *,
        kept: Any = None,
    ) -> int:
        """The snapshot, its figures and findings (inside a transaction); its id. ``kept``:
        what is stored of it, when not all of it (a rollup: :func:`._slim.slim`)."""
        blob = self._encode(db, state.KIND, (state if kept is None else kept).to_json().encode())
        key = _key(labels)
        cur = db.execute(
            "INSERT INTO snapshot(at, res, kind, labels, version, z) VALUES (?, ?, ?, ?, ?, ?)",
            (at, res, state.KIND, key, f"{__version__}+x{EXTRACTOR_VERSION}", blob),
        )
        snapshot = int(cur.lastrowid or 0)
        rows = []
        for s in extract(state):
            sid = self._series_id(db, s.name, state.KIND, _key({**labels, **s.labels}), s.unit)
            rows.append((sid, at, res, s.value, s.lo, s.hi, s.n, snapshot))
        db.executemany("INSERT INTO point VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if state.KIND == "silenttax.report" and res == 0:
            db.executemany(
                "INSERT INTO finding(at, labels, code, severity, subject, value, json, snapshot) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (at, key, f.code, f.severity.value, f.subject or "", f.value,
                     f.model_dump_json(), snapshot)
                    for f in state.findings
                ],
            )  # fmt: skip
        return snapshot

    # ------------------------------------------------------------------ writing
    def append(
        self,
        snapshot: Any,
        *,
        at: float | datetime | None = None,
        labels: Mapping[str, Any] | None = None,
    ) -> int:
        """Store a snapshot (a State, a live component such as a ``LatencyMonitor``, a
        ``Report``, or their JSON), its figures and findings; returns its id. An audit
        (``silenttax.audit.audit(...)``'s result) appends its report and every snapshot
        but the references, each labelled ``snapshot=<name>``.

        An environment snapshot whose fingerprint (Python, platform, CPU, packages,
        accelerators) differs from the previous one with the same labels adds an
        ``environment`` marker; a ``version`` label that changed adds a ``version`` one.

        Args:
            snapshot: What to keep.
            at: When it was taken (a datetime or epoch seconds; default: now).
            labels: Names for the stream it belongs to (``model``, ``route``, ``replica``,
                ``version``, ...): strings or numbers.

        Raises:
            InputError: not a snapshot, a bad ``at`` or label.
            StateError: the store stayed locked by other writers for ``timeout`` seconds.
        """
        if _is_audit(snapshot):
            return self._append_run(snapshot.snapshots, snapshot.report, at=at, labels=labels)[1]
        state = _as_state(snapshot)
        when = _epoch(at)
        names = _labels(labels)
        with self._write() as db:
            self._auto_markers(db, state, when, names)
            got = self._insert(db, state, when, 0.0, names)
        hour = math.floor(when / HOUR)
        if self._compacted_hour is not None and hour > self._compacted_hour:
            self._compact_in_background()  # once an hour of data, off the caller's path
        self._compacted_hour = (
            hour if self._compacted_hour is None else max(hour, self._compacted_hour)
        )
        return got

    def track(
        self,
        component: Any,
        *,
        every: float = 60.0,
        labels: Mapping[str, Any] | None = None,
        strict: bool = False,
    ) -> Tracker:
        """Append what a live component records, every ``every`` seconds, from a daemon
        thread: each append is the *window* since the previous one (a live monitor counts
        since it started; appending it whole every minute would count each request in
        every later minute). The last window is appended by ``Tracker.stop()``,
        :meth:`close` or at interpreter exit.

        Args:
            component: A ``LatencyMonitor``, ``LatencySketch``, the serving middleware
                (``instrument(app)``'s result: one tracker per worker, labelled with its
                ``replica``), a tracer's ``Breakdown``, or any component whose snapshot
                declares merge rules.
            every: Seconds between appends.
            labels: The stream's labels (``model``, ``route``, ``replica``, ...).
            strict: Raise the last failed append from ``stop()`` (by default failures
                are counted in ``Tracker.errors`` and the next window covers them).

        Raises:
            InputError: not a live component, a kind that cannot be windowed, a bad
                ``every``.

        Examples:
            >>> import tempfile, pathlib
            >>> from silenttax.monitor import LatencyMonitor
            >>> store = open(pathlib.Path(tempfile.mkdtemp()) / "h.db")
            >>> monitor = LatencyMonitor()
            >>> tracker = store.track(monitor, every=60, labels={"model": "m"})
            >>> monitor.record(0.012)
            >>> _ = tracker.flush(); monitor.record(0.020); monitor.record(0.030)
            >>> tracker.stop()
            >>> store.series("latency.count", model="m").values  # each window, not the total
            [1.0, 2.0]
            >>> store.close()
        """
        tracker = Tracker(self, component, every=every, labels=labels, strict=strict)
        self._trackers.add(tracker)
        return tracker

    def _append_run(
        self,
        snapshots: Mapping[str, Any],
        report: Any,
        *,
        at: float | datetime | None,
        labels: Mapping[str, Any] | None,
    ) -> tuple[int, int]:
        """An audit's snapshots (each labelled ``snapshot=<name>``; the references left
        out: they are the same each time) and its report (if any), all at one time;
        returns (how many were appended, the last one's id)."""
        when, done, last = _epoch(at), 0, 0
        for name, state in sorted(snapshots.items()):
            if not name.endswith("_reference"):
                last = self.append(state, at=when, labels={**(labels or {}), "snapshot": name})
                done += 1
        if report is not None:
            last = self.append(report, at=when, labels=labels)
            done += 1
        return done, last

    def _compact_in_background(self) -> None:
        running = self._compacting
        if running is not None and running.is_alive():
            return

        def run() -> None:
            # a connection of its own: the caller's appends never wait on this thread's
            # reads, only (at the file's lock) on its short write transactions
            with contextlib.suppress(Exception):  # never into the host; the next one retries
                other = History(self.path, timeout=self.timeout)
                try:
                    other.compact()
                finally:
                    other.close()

        self._compacting = threading.Thread(target=run, name="silenttax-history", daemon=True)
        self._compacting.start()

    def _auto_markers(
        self, db: sqlite3.Connection, state: Any, at: float, labels: dict[str, str]
    ) -> None:
        if state.KIND == _ENVIRONMENT:
            print_ = _fingerprint(state)
            key = f"environment:{_key(labels)}"
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is None or row[0] != print_:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, print_))
                if row is not None:
                    db.execute(
                        "INSERT INTO marker(at, kind, labels, meta) VALUES (?, ?, ?, ?)",
                        (at, "environment", _key(labels),
                         json.dumps({"fingerprint": print_, "previous": row[0]})),
                    )  # fmt: skip
        version = labels.get("version")
        if version is not None:
            rest = {k: v for k, v in labels.items() if k != "version"}
            key = f"version:{state.KIND}:{_key(rest)}"
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is None or row[0] != version:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, version))
                if row is not None:
                    db.execute(
                        "INSERT INTO marker(at, kind, labels, meta) VALUES (?, ?, ?, ?)",
                        (at, "version", _key(rest),
                         json.dumps({"version": version, "previous": row[0]})),
                    )  # fmt: skip

    def mark(
        self,
        kind: str,
        *,
        at: float | datetime | None = None,
        labels: Mapping[str, Any] | None = None,
        **meta: Any,
    ) -> None:
        """Record an event (``mark("deploy", version="2.3")``): trends name the nearest one.

        Raises:
            InputError: an empty ``kind``, a bad ``at`` or label, meta that is not JSON.
        """
        if not isinstance(kind, str) or not kind:
            raise InputError(f"kind: need a name such as 'deploy', got {kind!r}")
        try:
            text = json.dumps(meta, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InputError(f"meta: not JSON ({exc})") from exc
        with self._write() as db:
            db.execute(
                "INSERT INTO marker(at, kind, labels, meta) VALUES (?, ?, ?, ?)",
                (_epoch(at), kind, _key(_labels(labels)), text),
            )

    # ------------------------------------------------------------------ reading
    def markers(self, **filters: Any) -> list[Marker]:
        """Every marker whose labels include ``filters`` (a marker without labels is
        everyone's), oldest first."""
        wanted = _labels(filters)
        with self._lock:
            rows = self._db.execute(
                "SELECT at, kind, labels, meta FROM marker ORDER BY at"
            ).fetchall()
        out = []
        for at, kind, labels, meta in rows:
            mine = json.loads(labels)
            if all(mine.get(k, v) == v for k, v in wanted.items()):
                out.append(Marker(at, kind, mine, json.loads(meta)))
        return out

    def metrics(self, **filters: Any) -> list[str]:
        """The names of the figures tracked for streams with ``filters``."""
        return sorted({name for name, _, _, _ in self._matching(None, _labels(filters))})

    def _matching(
        self, name: str | None, filters: dict[str, str]
    ) -> list[tuple[str, str, dict[str, str], int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, kind, labels, id FROM series"
                + ("" if name is None else " WHERE name = ?"),
                () if name is None else (name,),
            ).fetchall()
        out = []
        for n, kind, labels, sid in rows:
            mine = json.loads(labels)
            if _matches(mine, filters):
                out.append((n, kind, mine, int(sid)))
        return out

    def findings(self, *, since: float | datetime | str | None = None, **filters: Any) -> list[Any]:
        """The findings of appended Reports whose labels include ``filters``."""
        from silenttax.report import Finding

        start = _since(since, time.time())
        wanted = _labels(filters)
        with self._lock:
            rows = self._db.execute(
                "SELECT labels, json FROM finding WHERE at >= ? ORDER BY at",
                (start if start is not None else -math.inf,),
            ).fetchall()
        return [
            Finding.model_validate_json(text)
            for labels, text in rows
            if _matches(json.loads(labels), wanted)
        ]

    def series(
        self,
        metric: str,
        /,
        *,
        since: float | datetime | str | None = None,
        until: float | datetime | None = None,
        resolution: str = "raw",
        partial: bool = False,
        labels: Mapping[str, Any] | None = None,
        **filters: Any,
    ) -> Series:
        """One figure over time, with its 95% intervals.

        ``resolution="raw"`` gives the points as appended (one stream: ``filters`` must
        pick one label set). ``"1h"`` / ``"1d"`` give rollups built by merging the
        snapshots of each hour or day — of every stream ``filters`` match, so the fleet's
        daily p99 is the p99 of all its requests, never an average of p99s.

        Args:
            metric: A figure's name (see :meth:`metrics`), e.g. ``latency.p99``.
            since: Start: a datetime, epoch seconds, or back from now (``"90d"``).
            until: End (default: now).
            resolution: ``"raw"``, ``"1h"`` or ``"1d"``.
            partial: Include the period under way (default: only the hours or days that
                have ended, as of the newest snapshot: a half day is not a day).
            labels: Labels the streams must have, as a mapping (for label names that are
                also argument names: ``since``, ``labels``, ...).
            filters: The same as keywords (``model="ranker"``, ``route="/p"``).

        Raises:
            InputError: an unknown resolution, nothing tracked by that name and labels,
                or several streams at ``"raw"`` (named).
        """
        if resolution not in RESOLUTIONS:
            raise InputError(f"resolution must be one of {sorted(RESOLUTIONS)}, got {resolution!r}")
        now = time.time()
        start = _since(since, now)
        end = _epoch(until) if until is not None else math.inf
        wanted = _labels({**(labels or {}), **filters})
        found = self._matching(metric, wanted)
        if not found:
            known = ", ".join(self.metrics(**wanted)[:12]) or "nothing"
            raise InputError(
                f"metric: {metric!r} is not tracked for {wanted or 'any labels'} (tracked: {known})"
            )
        res = RESOLUTIONS[resolution]
        if res == 0:
            if len(found) > 1:
                sets = "; ".join(_key(labels) for _, _, labels, _ in found[:5])
                raise InputError(
                    f"{metric!r}: {len(found)} streams match {wanted or 'no labels'} ({sets}): "
                    "pick one with labels, or ask for a rollup (resolution='1h' or '1d'), "
                    "which merges them"
                )
            _, _, labels, sid = found[0]
            lower = start if start is not None else -math.inf
            with self._lock:
                rows = self._db.execute(
                    "SELECT at, value, lo, hi, n FROM point WHERE series = ? AND res = 0 "
                    "AND at >= ? AND at <= ?",
                    (sid, lower, end),
                ).fetchall()
            rows += [p[:5] for _, p in self._packed([sid], lower, end)]
            rows.sort(key=lambda r: r[0])
            return Series(
                metric, labels, self._unit(sid), [r[0] for r in rows], [r[1] for r in rows],
                [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows],
            )  # fmt: skip
        return self._rolled(metric, found, res, start, end, resolution, partial)

    def _packed(
        self, sids: Sequence[int] | None, start: float, end: float, res: float = 0.0
    ) -> list[tuple[int, PackedPoint]]:
        """(series, point) of the packed figures of resolution ``res`` with ``start <= at
        <= end`` (of every series when ``sids`` is None)."""
        first = -math.inf if math.isinf(start) else math.floor(start / DAY) * DAY
        where = "res = ? AND day >= ? AND day <= ?"
        args: list[Any] = [res, first, end]
        if sids is not None:
            where += f" AND series IN ({','.join('?' * len(sids))})"
            args += list(sids)
        with self._lock:
            rows = self._db.execute(f"SELECT series, z FROM chunk WHERE {where}", args).fetchall()
        return [(int(sid), p) for sid, z in rows for p in unpack(z) if start <= p[0] <= end]

    def _pack_closed_days(self, closed: float, res: float) -> int:
        """Move the figures of resolution ``res`` (raw or hourly) of days before
        ``closed`` from rows into chunks (merged with a chunk already there: a late
        snapshot, a rebuilt rollup); returns the figures moved. Each day is read, packed
        and deleted in one transaction: a writer appending to that day meanwhile loses
        nothing."""
        moved, day = 0, -math.inf
        while True:
            with self._lock:
                first = self._db.execute(
                    "SELECT MIN(at) FROM point WHERE res = ? AND at >= ? AND at < ?",
                    (res, day, closed),
                ).fetchone()[0]
            if first is None:
                return moved
            day = math.floor(first / DAY) * DAY
            upto = min(day + DAY, closed)
            with self._write() as db:
                rows = db.execute(
                    "SELECT series, at, value, lo, hi, n, snapshot FROM point "
                    "WHERE res = ? AND at >= ? AND at < ?", (res, day, upto),
                ).fetchall()  # fmt: skip
                per_series: dict[int, list[PackedPoint]] = {}
                for sid, at, value, lo, hi, n, snapshot in rows:
                    per_series.setdefault(int(sid), []).append(
                        (at, value, lo, hi, n, int(snapshot))
                    )
                for sid, points in per_series.items():
                    old = db.execute(
                        "SELECT z FROM chunk WHERE series = ? AND res = ? AND day = ?",
                        (sid, res, day),
                    ).fetchone()
                    if old is not None:
                        points = unpack(old[0]) + points
                    points.sort(key=lambda p: (p[0], p[5]))
                    db.execute(
                        "INSERT OR REPLACE INTO chunk(series, res, day, z) VALUES (?, ?, ?, ?)",
                        (sid, res, day, pack(points)),
                    )
                db.execute(
                    "DELETE FROM point WHERE res = ? AND at >= ? AND at < ?", (res, day, upto)
                )
            moved += len(rows)
            day = upto

    @staticmethod
    def _forget_packed(
        db: sqlite3.Connection, gone: Mapping[tuple[float, float], set[int]]
    ) -> None:
        """Take the packed figures of snapshots out of their chunks (``gone``: (res, day)
        -> snapshot ids; inside a write transaction)."""
        for (res, day), ids in gone.items():
            for sid, z in db.execute(
                "SELECT series, z FROM chunk WHERE res = ? AND day = ?", (res, day)
            ).fetchall():
                points = unpack(z)
                kept = [p for p in points if p[5] not in ids]
                if len(kept) == len(points):
                    continue
                if kept:
                    db.execute(
                        "UPDATE chunk SET z = ? WHERE series = ? AND res = ? AND day = ?",
                        (pack(kept), sid, res, day),
                    )
                else:
                    db.execute(
                        "DELETE FROM chunk WHERE series = ? AND res = ? AND day = ?",
                        (sid, res, day),
                    )

    def _unit(self, sid: int) -> str:
        with self._lock:
            row = self._db.execute("SELECT unit FROM series WHERE id = ?", (sid,)).fetchone()
        return str(row[0]) if row else ""

    def _snapshots(
        self, kind: str, label_sets: Sequence[str], res: float, start: float, end: float
    ) -> list[tuple[int, float, float, str]]:
        """(id, at, res, labels) of the snapshots that may make up the rollups (no blobs)."""
        marks = ",".join("?" * len(label_sets))
        with self._lock:
            return list(self._db.execute(
                f"SELECT id, at, res, labels FROM snapshot WHERE kind = ? AND res IN (0, ?, ?) "
                f"AND labels IN ({marks}) AND at >= ? AND at < ? AND z IS NOT NULL ORDER BY at",
                (kind, HOUR, res, *label_sets, start, end),
            ).fetchall())  # fmt: skip

    def _encode(self, db: sqlite3.Connection, kind: str, text: bytes) -> bytes:
        """A snapshot's JSON compressed with its kind's dictionary (inside a write
        transaction: the first snapshot of a kind makes the dictionary)."""
        got = self._zdict_ids.get(kind)
        if got is None:
            db.execute("INSERT OR IGNORE INTO zdict(kind, d) VALUES (?, ?)", (kind, text[:_ZDICT]))
            zid, d = db.execute("SELECT id, d FROM zdict WHERE kind = ?", (kind,)).fetchone()
            got = self._zdict_ids[kind] = int(zid)
            self._zdicts[got] = bytes(d)
        packer = zlib.compressobj(6, zdict=self._zdicts[got])
        return b"\x01" + got.to_bytes(4, "little") + packer.compress(text) + packer.flush()

    def _json(self, blob: bytes) -> Any:
        """A stored snapshot's JSON, parsed."""
        if blob[:1] != b"\x01":  # written before dictionaries: plain zlib
            return json.loads(zlib.decompress(blob))
        zid = int.from_bytes(blob[1:5], "little")
        d = self._zdicts.get(zid)
        if d is None:
            with self._lock:
                row = self._db.execute("SELECT d FROM zdict WHERE id = ?", (zid,)).fetchone()
            if row is None:
                raise StateError(f"{str(self.path)!r}: a snapshot names dictionary {zid}, absent")
            d = self._zdicts[zid] = bytes(row[0])
        unpacker = zlib.decompressobj(zdict=d)
        return json.loads(unpacker.decompress(blob[5:]) + unpacker.flush())

    def snapshot(self, snapshot_id: int) -> Any:
        """The snapshot an :meth:`append` stored under ``snapshot_id`` (its return
        value), as a State.

        Raises:
            InputError: no such snapshot, or a raw one already deleted (a day after it
                was taken, once rolled up: :data:`RETENTION`).
        """
        with self._lock:
            row = self._db.execute(
                "SELECT z FROM snapshot WHERE id = ?", (int(snapshot_id),)
            ).fetchone()
        if row is None or row[0] is None:
            raise InputError(f"snapshot_id: no snapshot {snapshot_id!r} is kept")
        return _as_state(self._json(row[0]))

    def _blobs(self, ids: Sequence[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for chunk in range(0, len(ids), 500):
            part = list(ids[chunk : chunk + 500])
            with self._lock:
                out.update(self._db.execute(
                    f"SELECT id, z FROM snapshot WHERE id IN ({','.join('?' * len(part))})", part
                ).fetchall())  # fmt: skip
        return out

    def _rolled(
        self,
        metric: str,
        found: list[tuple[str, str, dict[str, str], int]],
        res: float,
        start: float | None,
        end: float,
        resolution: str,
        partial: bool,
    ) -> Series:
        """Rollups of ``metric`` over the matched streams: per period, each stream's stored
        rollup (from :meth:`compact`) or else its raw snapshots, all merged, then extracted."""
        kinds = {kind for _, kind, _, _ in found}
        if len(kinds) > 1:
            raise InputError(
                f"{metric!r} comes from several kinds ({sorted(kinds)}): filter by labels"
            )
        (kind,) = kinds
        with self._lock:
            streams = [json.loads(s) for (s,) in self._db.execute(
                "SELECT DISTINCT labels FROM snapshot WHERE kind = ?", (kind,)
            ).fetchall()]  # fmt: skip
        chosen: set[str] = set()
        figures: set[str] = set()
        for _, _, labels, _ in found:
            inside = [stream for stream in streams if _matches(labels, stream)]
            if not inside:
                continue
            stream = max(inside, key=len)  # the snapshot's labels; the rest are the figure's
            chosen.add(_key(stream))
            figures.add(_key({k: v for k, v in labels.items() if k not in stream}))
        if len(figures) > 1:
            raise InputError(
                f"{metric!r}: several figures match ({'; '.join(sorted(figures)[:5])}): "
                "pick one with labels"
            )
        own: dict[str, str] = json.loads(figures.pop()) if figures else {}
        first = -math.inf if start is None else math.floor(start / res) * res
        if not partial:  # the periods that have ended, as of the newest snapshot
            with self._lock:
                newest = self._db.execute("SELECT MAX(at) FROM snapshot").fetchone()[0]
            end = min(end, math.floor(float(newest or 0.0) / res) * res)
        periods: dict[float, dict[str, list[tuple[float, float, int]]]] = {}
        for sid, at, r, key in self._snapshots(kind, sorted(chosen), res, first, end):
            if len(found) == 1 and r == res:
                continue  # read from the stored figures below
            period = math.floor(at / res) * res
            periods.setdefault(period, {}).setdefault(key, []).append((r, at, sid))
        stored: dict[float, tuple[float, float | None, float | None, int | None]] = {}
        if len(found) == 1:  # one stream: its rollups' figures are stored as they are
            with self._lock:
                stored = {
                    at: (v, lo, hi, n)
                    for at, v, lo, hi, n in self._db.execute(
                        "SELECT at, value, lo, hi, n FROM point WHERE series = ? AND res = ? "
                        "AND at >= ? AND at < ?", (found[0][3], res, first, end),
                    ).fetchall()
                }  # fmt: skip
            if res == HOUR:  # the hours of closed days are packed
                stored.update({
                    p[0]: p[1:5] for _, p in self._packed([found[0][3]], first, end, HOUR)
                    if p[0] < end
                })  # fmt: skip
        out = Series(metric, {}, self._unit(found[0][3]), [], [], [], [], [], resolution)
        for period in sorted(set(periods) | set(stored)):
            if period in stored:
                value, lo, hi, n = stored[period]
                out.times.append(period)
                out.values.append(value)
                out.lo.append(lo)
                out.hi.append(hi)
                out.n.append(n)
                continue
            ids: list[int] = []
            for stream in periods[period].values():  # its rollup, else its hours and the rest
                rolled = [i for r, _, i in stream if r == res]
                if rolled:
                    ids.append(rolled[-1])
                    continue
                hours = [(at, i) for r, at, i in stream if r == HOUR < res]
                covered = max((at for at, _ in hours), default=-math.inf) + HOUR
                ids += [i for _, i in hours]
                ids += [i for r, at, i in stream if r == 0 and at >= covered]
            blobs = self._blobs(ids)
            merged = _merged([self._json(blobs[i]) for i in ids if blobs.get(i)])
            if merged is None:
                continue
            for scalar in extract(merged):
                if scalar.name == metric and scalar.labels == own:
                    out.times.append(period)
                    out.values.append(scalar.value)
                    out.lo.append(scalar.lo)
                    out.hi.append(scalar.hi)
                    out.n.append(scalar.n)
                    break
        sets = [found_labels for _, _, found_labels, _ in found]
        out.labels.update(
            {k: v for k, v in sets[0].items() if all(other.get(k) == v for other in sets)}
        )
        return out

    # ------------------------------------------------------------------ rollups
    def compact(self, *, now: float | datetime | None = None,
                retention: Mapping[str, float | None] | None = None,
                vacuum: bool = False) -> dict[str, int]:  # fmt: skip
        """Build the hourly and daily rollups of closed periods by merging snapshots, and
        drop what ``retention`` no longer keeps (default :data:`RETENTION`: raw 7 days,
        hourly 90, daily forever). Runs by itself once an hour of data from
        :meth:`append`. Ages count back from ``now``, by default the newest snapshot's
        time (so a back-filled history keeps its last week raw, as a live one does).

        A rollup is built once its period is closed, and built again when raw snapshots
        arrive after it (merged into it: the raw snapshots before it may be gone).

        Freed pages go back to the file system as they are freed; pages left half empty
        by emptied snapshots are packed only by ``vacuum=True`` (a rewrite of the file:
        writers wait for it; the year in ``docs/benchmarks.md`` went 123 -> 86 MiB).

        Returns:
            Rollups written (``1h``, ``1d``), snapshots ``dropped``, raw snapshots
            ``emptied`` (or deleted, once their day is packed), raw and hourly figures
            ``packed`` into chunks, packed raw days dropped (``dropped_days``).
        """
        keep = {**RETENTION, **(retention or {})}
        if now is None:
            with self._lock:
                newest = self._db.execute("SELECT MAX(at) FROM snapshot").fetchone()[0]
            if newest is None:
                return dict.fromkeys(_COMPACTED, 0)
            t_now = float(newest)
        else:
            t_now = _epoch(now)
        done = dict.fromkeys(_COMPACTED, 0)
        for name, res in (("1h", HOUR), ("1d", DAY)):
            closed = math.floor(t_now / res) * res  # periods before this one are closed
            mark_key = f"compacted:{name}"
            with self._lock:  # raw snapshots since the last compaction (the watermark)
                row = self._db.execute("SELECT value FROM meta WHERE key = ?", (mark_key,))
                got = row.fetchone()
                mark = int(got[0]) if got else 0
                todo = self._db.execute(
                    "SELECT kind, labels, CAST(at / ? AS INTEGER) AS p, MAX(id) FROM snapshot "
                    "WHERE res = 0 AND at < ? AND id > ? GROUP BY kind, labels, p",
                    (res, closed, mark),
                ).fetchall()
                waiting = self._db.execute(  # in periods still open: next time
                    "SELECT MIN(id) FROM snapshot WHERE res = 0 AND at >= ? AND id > ?",
                    (closed, mark),
                ).fetchone()[0]
                newest_id = self._db.execute("SELECT MAX(id) FROM snapshot").fetchone()[0]
                rolled = {
                    (kind, labels, int(p)): int(i)
                    for kind, labels, p, i in self._db.execute(
                        "SELECT kind, labels, CAST(at / ? AS INTEGER), MAX(id) FROM snapshot "
                        "WHERE res = ? GROUP BY kind, labels, CAST(at / ? AS INTEGER)",
                        (res, res, res),
                    ).fetchall()
                }
            for kind, labels, p, newest in todo:
                have = rolled.get((kind, labels, int(p)), -1)
                if have > newest:
                    continue  # rolled up after its newest raw snapshot arrived
                start = int(p) * res
                with self._lock:  # the rollup so far, and the raw snapshots that came after it
                    blobs = [b for (b,) in self._db.execute(
                        "SELECT z FROM snapshot WHERE kind = ? AND labels = ? AND at >= ? "
                        "AND at < ? AND ((res = ? AND id = ?) OR (res = 0 AND id > ?)) "
                        "ORDER BY res DESC, at",
                        (kind, labels, start, start + res, res, have, have),
                    ).fetchall() if b is not None]  # fmt: skip
                merged = _merged([self._json(b) for b in blobs])
                if merged is None:
                    continue
                with self._write() as db:
                    old = [i for (i,) in db.execute(
                        "SELECT id FROM snapshot WHERE res = ? AND kind = ? AND labels = ? "
                        "AND at >= ? AND at < ?", (res, kind, labels, start, start + res),
                    ).fetchall()]  # fmt: skip
                    self._drop(db, old)
                    self._insert(db, merged, start, res, json.loads(labels), kept=slim(merged))
                done[name] += 1
            new_mark = int(waiting) - 1 if waiting is not None else int(newest_id or 0)
            with self._write() as db:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (mark_key, str(new_mark)))
        today = math.floor(t_now / DAY) * DAY
        done["packed"] = self._pack_closed_days(today, 0.0) + self._pack_closed_days(today, HOUR)
        span = keep.get("raw_snapshots")
        if span is not None:  # raw snapshots whose hour and day are rolled up: figures only
            rolled_up = (
                "EXISTS (SELECT 1 FROM snapshot r WHERE r.res = ? AND r.kind = snapshot.kind "
                "AND r.labels = snapshot.labels AND r.id > snapshot.id AND "
                "r.at = CAST(snapshot.at / ? AS INTEGER) * ?)"
            )
            with self._write() as db:
                # in a packed day the figures are in chunks: the row itself goes
                cur = db.execute(
                    f"DELETE FROM snapshot WHERE res = 0 AND at < ? AND (z IS NULL OR "
                    f"(at < ? AND {rolled_up}))",
                    (today, t_now - span, DAY, DAY, DAY),
                )
                done["emptied"] = cur.rowcount
                cur = db.execute(
                    f"UPDATE snapshot SET z = NULL WHERE res = 0 AND z IS NOT NULL AND at < ? "
                    f"AND {rolled_up}",
                    (t_now - span, DAY, DAY, DAY),
                )
                done["emptied"] += cur.rowcount
        for name, res in (("raw", 0.0), ("1h", HOUR), ("1d", DAY)):
            span = keep.get(name)
            if span is None:
                continue
            with self._write() as db:
                # only what a coarser rollup already holds
                cover = DAY if res < DAY else None
                if cover is None:
                    continue
                old = [i for (i,) in db.execute(
                    "SELECT s.id FROM snapshot s WHERE s.res = ? AND s.at < ? AND EXISTS ("
                    "SELECT 1 FROM snapshot r WHERE r.res = ? AND r.kind = s.kind AND "
                    "r.labels = s.labels AND r.at = CAST(s.at / ? AS INTEGER) * ?)",
                    (res, t_now - span, cover, cover, cover),
                ).fetchall()]  # fmt: skip
                self._drop(db, old)
                done["dropped"] += len(old)
                if res == 0:  # packed days all older than the span, held by a daily rollup
                    cur = db.execute(
                        "DELETE FROM chunk WHERE res = 0 AND day + ? <= ? AND EXISTS (SELECT 1 "
                        "FROM point p WHERE p.series = chunk.series AND p.res = ? AND "
                        "p.at = chunk.day)",
                        (DAY, t_now - span, DAY),
                    )
                    done["dropped_days"] = cur.rowcount
        with self._lock:
            self._db.executescript("PRAGMA incremental_vacuum;")  # steps until done
            if vacuum:
                self._db.execute("VACUUM")
            with contextlib.suppress(sqlite3.OperationalError):  # a reader holds it: next time
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return done

    def _drop(self, db: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Delete snapshots with their figures, packed hourly ones included (raw packed
        days go as days, by retention)."""
        gone: dict[tuple[float, float], set[int]] = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            for sid, at in db.execute(
                f"SELECT id, at FROM snapshot WHERE id IN ({marks}) AND res = ?",
                (*part, HOUR),
            ).fetchall():
                gone.setdefault((HOUR, math.floor(at / DAY) * DAY), set()).add(int(sid))
            db.execute(f"DELETE FROM point WHERE snapshot IN ({marks})", part)
            db.execute(f"DELETE FROM snapshot WHERE id IN ({marks})", part)
        self._forget_packed(db, gone)

    def state(
        self,
        kind: str,
        *,
        since: float | datetime | str | None = None,
        until: float | datetime | None = None,
        labels: Mapping[str, Any] | None = None,
        **filters: Any,
    ) -> Any:
        """The snapshots of ``kind`` in a window, of every stream ``filters`` match, merged
        into one component: last quarter's latency as a baseline for today's check.

        Uses each period's rollup where the raw snapshots are gone (a period is counted
        once: its daily rollup, else its hourly ones, else its raw snapshots).

        Raises:
            InputError: nothing of ``kind`` with those labels in the window.

        Examples:
            >>> import tempfile, pathlib
            >>> from silenttax.monitor import LatencyMonitor
            >>> store = open(pathlib.Path(tempfile.mkdtemp()) / "h.db")
            >>> for day in range(3):
            ...     m = LatencyMonitor()
            ...     m.record(0.01 * (day + 1))
            ...     _ = store.append(m, at=day * 86400.0, labels={"model": "m"})
            >>> store.state("silenttax.latency_monitor", model="m").sketch.count
            3
            >>> store.close()
        """
        from silenttax._registry import load

        start = _since(since, time.time())
        end = _epoch(until) if until is not None else math.inf
        wanted = _labels({**(labels or {}), **filters})
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, res, labels FROM snapshot WHERE kind = ? AND at >= ? AND at < ? "
                "AND z IS NOT NULL ORDER BY at",
                (kind, start if start is not None else -math.inf, end),
            ).fetchall()
        ids: list[int] = []
        streams: dict[str, list[tuple[int, float, float]]] = {}
        for sid, at, res, key in rows:
            if _matches(json.loads(key), wanted):
                streams.setdefault(key, []).append((int(sid), float(at), float(res)))
        for got in streams.values():
            days = {math.floor(at / DAY) for _, at, res in got if res == DAY}
            hours = {math.floor(at / HOUR) for _, at, res in got if res == HOUR}
            for sid, at, res in got:
                if res == DAY:
                    ids.append(sid)
                elif math.floor(at / DAY) in days:
                    continue
                elif res == HOUR or math.floor(at / HOUR) not in hours:
                    ids.append(sid)
        if not ids:
            raise InputError(f"no {kind!r} snapshot with {wanted or 'any labels'} in that window")
        blobs = self._blobs(ids)
        merged = _merged([self._json(blobs[i]) for i in ids])
        return load(merged)

    def reextract(self) -> int:
        """Extract the figures of every kept snapshot again (after an upgrade added a
        figure, or a user's ``gauges()`` changed); returns the snapshots re-read. Raw
        snapshots past their day keep the figures they had."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, res, labels FROM snapshot WHERE z IS NOT NULL"
            ).fetchall()
        done = 0
        repacked: dict[tuple[float, float], set[int]] = {}  # their packed figures go
        for chunk in range(0, len(rows), 200):
            part = rows[chunk : chunk + 200]
            blobs = self._blobs([int(r[0]) for r in part])
            with self._write() as db:
                for sid, at, res, key in part:
                    state = _as_state(self._json(blobs[int(sid)]))
                    db.execute("DELETE FROM point WHERE snapshot = ?", (sid,))
                    labels = json.loads(key)
                    if res in (0, HOUR):
                        day = math.floor(at / DAY) * DAY
                        repacked.setdefault((float(res), day), set()).add(int(sid))
                    db.executemany(
                        "INSERT INTO point VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (self._series_id(db, x.name, state.KIND,
                                             _key({**labels, **x.labels}), x.unit),
                             at, res, x.value, x.lo, x.hi, x.n, sid)
                            for x in extract(state)
                        ],
                    )  # fmt: skip
                    done += 1
        with self._write() as db:  # the old figures of those snapshots, if packed
            self._forget_packed(db, repacked)
        return done

    def stats(self) -> dict[str, int]:
        """Rows per table and the file's bytes."""
        with self._lock:
            out = {
                table: int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in ("snapshot", "series", "point", "chunk", "finding", "marker")
            }
        out["bytes"] = self.path.stat().st_size + sum(
            p.stat().st_size for p in self.path.parent.glob(self.path.name + "-*") if p.is_file()
        )
        return out

    # ------------------------------------------------------------------ export
    def export(
        self, out: str | os.PathLike[str], *, since: float | datetime | str | None = None
    ) -> list[Path]:
        """Write the figures, findings and markers as Hive-partitioned Parquet that DuckDB
        or Spark read without silenttax (needs pyarrow: ``pip install 'silenttax[io]'``).

        ``OUT/points/date=YYYY-MM-DD/part-0.parquet``: one row per figure and snapshot —
        ``name``, ``kind``, ``labels`` (JSON), a column per label key, ``epoch_seconds``
        (``at`` is a reserved word in SQL), ``res`` (0 raw, 3600, 86400), ``value``,
        ``lo``, ``hi``, ``n``;
        ``OUT/findings/...`` and ``OUT/markers/...`` the same way. A second export over
        the same folder replaces the days it writes.

        Returns:
            The files written.
        """
        from silenttax._deps import optional_import

        pa = optional_import("pyarrow", purpose="History.export")
        pq = optional_import("pyarrow.parquet", purpose="History.export")
        start = _since(since, time.time())
        lower = -math.inf if start is None else start
        with self._lock:
            rows = self._db.execute(
                "SELECT series, at, res, value, lo, hi, n FROM point WHERE at >= ?", (lower,)
            ).fetchall()
            names = {
                int(sid): (name, kind, labels)
                for sid, name, kind, labels in self._db.execute(
                    "SELECT id, name, kind, labels FROM series"
                ).fetchall()
            }
            findings = self._db.execute(
                "SELECT at, labels, code, severity, subject, value, json FROM finding "
                "WHERE at >= ? ORDER BY at", (lower,),
            ).fetchall()  # fmt: skip
            markers = self._db.execute(
                "SELECT at, kind, labels, meta FROM marker WHERE at >= ? ORDER BY at", (lower,)
            ).fetchall()
        for res in (0.0, HOUR):
            rows += [
                (sid, p[0], res, *p[1:5]) for sid, p in self._packed(None, lower, math.inf, res)
            ]
        rows.sort(key=lambda r: (r[1], r[0]))
        points = [(*names[r[0]], *r[1:]) for r in rows]
        tables = {
            "points": (
                ["name", "kind", "labels", "epoch_seconds", "res", "value", "lo", "hi", "n"],
                points,
            ),
            "findings": (
                ["epoch_seconds", "labels", "code", "severity", "subject", "value", "json"],
                findings,
            ),
            "markers": (["epoch_seconds", "kind", "labels", "meta"], markers),
        }
        written: list[Path] = []
        for table, (columns, rows) in tables.items():
            if not rows:
                continue
            at = columns.index("epoch_seconds")
            keys = sorted({k for row in rows for k in json.loads(row[columns.index("labels")])})
            by_day: dict[str, list[Any]] = {}
            for row in rows:
                by_day.setdefault(_iso(row[at]), []).append(row)
            for day, part in by_day.items():
                data: dict[str, list[Any]] = {
                    c: [r[i] for r in part] for i, c in enumerate(columns)
                }
                label_dicts = [json.loads(r[columns.index("labels")]) for r in part]
                for key in keys:
                    if key not in data:
                        data[key] = [d.get(key) for d in label_dicts]
                folder = Path(out) / table / f"date={day}"
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / "part-0.parquet"
                pq.write_table(pa.table(data), path)
                written.append(path)
        return written

    # ------------------------------------------------------------------ judging
    def trend(
        self,
        metrics: str | Sequence[str] | None = None,
        *,
        since: float | datetime | str | None = "90d",
        resolution: str = "1d",
        alpha: float = 0.05,
        looks: int = 13,
        margin: float = 0.01,
        limits: Mapping[str, float] | None = None,
        directions: Mapping[str, str] | None = None,
        labels: Mapping[str, Any] | None = None,
        **filters: Any,
    ) -> Any:
        """Creep and change points of tracked figures: a Report (see
        :func:`silenttax.history.check_trend` for the statistics).

        Args:
            metrics: Figure names (default: every latency p99, cost per 1000 and null
                rate tracked for ``filters``).
            since: The window judged (default the last 90 days).
            resolution: The rollup judged (``"1d"``: a day is the unit).
            alpha: False-alarm rate per series over ``looks`` weekly looks.
            looks: Weekly looks the rate holds over (13: a quarter).
            margin: Smallest creep per 30 days that is a finding (0.01: 1% a month).
            limits: Figure name -> an SLO or budget: a creep's projected crossing date.
            directions: Figure name -> ``"up"`` / ``"down"``: which way is worse
                (default: down for throughput, utilisation and request counts, else up).
            labels: Labels of the streams, as a mapping.
            filters: The same as keywords.
        """
        from silenttax.history._check import check_series, default_metrics

        wanted = _labels({**(labels or {}), **filters})
        names = (
            [metrics] if isinstance(metrics, str)
            else list(metrics) if metrics is not None
            else default_metrics(self.metrics(**wanted))
        )  # fmt: skip
        series = [
            self.series(name, since=since, resolution=resolution, labels=stream)
            for name in names
            for stream in self._streams(name, wanted)
        ]
        return check_series(
            series,
            markers=self.markers(**wanted),
            alpha=alpha,
            looks=looks,
            margin=margin,
            limits=limits or {},
            directions=directions or {},
        )

    def _streams(self, name: str, wanted: dict[str, str]) -> list[dict[str, Any]]:
        """The label sets to judge apart for ``name``: per figure label (route, column),
        replicas merged."""
        found = self._matching(name, wanted)
        own = sorted({k for _, _, labels, _ in found for k in labels} - set(wanted) - {"replica"})
        seen: dict[str, dict[str, str]] = {}
        for _, _, labels, _ in found:
            pick = {**wanted, **{k: labels[k] for k in own if k in labels}}
            seen.setdefault(_key(pick), pick)
        return list(seen.values())


def _merged(datas: list[dict[str, Any]]) -> Any:
    """Snapshots of one kind merged (a kind without ``merge``: the latest)."""
    from silenttax._registry import load, merge

    if not datas:
        return None
    if len(datas) == 1:
        return _as_state(load(datas[0]))
    try:
        return _as_state(merge(datas))
    except Exception:
        return _as_state(load(datas[-1]))


def open(path: str | os.PathLike[str], *, timeout: float = 30.0) -> History:
    """Open (or create) the history store at ``path`` (one SQLite file).

    Args:
        path: The file.
        timeout: Seconds a write waits for other writers before a StateError.

    Raises:
        StateError: not a history store, or one written by a newer silenttax.

    Examples:
        >>> import tempfile, pathlib
        >>> from silenttax.monitor import LatencyMonitor
        >>> store = open(pathlib.Path(tempfile.mkdtemp()) / "ranker.history")
        >>> monitor = LatencyMonitor()
        >>> for day in range(3):
        ...     for ms in range(1, 501):
        ...         monitor.record((ms + 10 * day) / 1000)
        ...     _ = store.append(monitor, at=day * 86400.0, labels={"model": "ranker"})
        ...     monitor.reset()
        >>> s = store.series("latency.p50", model="ranker")
        >>> [round(v, 2) for v in s.values]  # the sketch's 1% accuracy
        [0.25, 0.26, 0.27]
        >>> store.close()
    """
    return History(path, timeout=timeout)
