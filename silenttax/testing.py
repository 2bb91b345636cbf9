"""Assertions for pytest users: fail a test when a candidate is slower than its baseline.

Examples:
    >>> import numpy as np
    >>> from silenttax.testing import assert_no_regression
    >>> rng = np.random.default_rng(0)
    >>> before = rng.lognormal(np.log(0.01), 0.5, 20_000)
    >>> _ = assert_no_regression(before, rng.lognormal(np.log(0.01), 0.5, 20_000))
    >>> assert_no_regression(before, rng.lognormal(np.log(0.02), 0.5, 20_000))
    Traceback (most recent call last):
    ...
    AssertionError: performance regression: ...
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from silenttax.errors import InputError
from silenttax.report import Report

__all__ = ["Broken", "CpuHog", "Examples", "assert_no_regression", "check_component"]

_SPIN = "import time\nwhile True:\n    time.perf_counter()\n"


class CpuHog:
    """A noisy neighbour for tests: ``processes`` busy Python processes, stopped by pid.

    What a shared CI runner or VM does to a measurement, on purpose: start it
    before or in the middle of a measurement, stop it whenever. Each process
    spins on one core until stopped; ``stop()`` kills them by pid (SIGKILL,
    then waits), and the context manager stops them however the block ends.

    Args:
        processes: Busy processes (each takes one core).
        delay: Seconds to wait, in a background thread, before starting them
            (``start()`` returns at once): a hog that arrives mid-measurement.

    Raises:
        InputError: ``processes`` below 1 or ``delay`` negative.

    Examples:
        >>> from silenttax.testing import CpuHog
        >>> with CpuHog(processes=1) as hog:
        ...     running = len(hog.pids)
        >>> running, hog.pids
        (1, [])
    """

    def __init__(self, processes: int = 2, *, delay: float = 0.0) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise InputError(f"processes must be an int >= 1, got {processes!r}")
        if not delay >= 0:
            raise InputError(f"delay must be >= 0 seconds, got {delay!r}")
        self.processes = processes
        self.delay = float(delay)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._timer: Any = None
        self.started_at: float | None = None
        """``time.perf_counter()`` when the processes were started (None before)."""

    @property
    def pids(self) -> list[int]:
        """Process ids of the running hog processes."""
        return [p.pid for p in self._procs if p.poll() is None]

    def _spawn(self) -> None:
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-c", _SPIN],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(self.processes)
        ]
        self.started_at = time.perf_counter()

    def start(self) -> CpuHog:
        """Start the processes now, or after ``delay`` seconds in the background."""
        if self.delay > 0:
            import threading

            self._timer = threading.Timer(self.delay, self._spawn)
            self._timer.daemon = True
            self._timer.start()
        else:
            self._spawn()
        return self

    def stop(self) -> None:
        """Kill every hog process by pid and reap it (a pending delayed start is cancelled)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
            self._timer = None
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
            proc.wait(timeout=10)
        self._procs = []

    def __enter__(self) -> CpuHog:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def assert_no_regression(
    baseline: Any, candidate: Any = None, *, allow_inconclusive: bool = True, **tolerances: Any
) -> Report:
    """Raise ``AssertionError`` (the rendered gate report) when the gate says regression.

    ``baseline`` alone may be a :class:`~silenttax.benchmark.Comparison` (both sides
    interleaved in one process), as for the gate. Arguments and ``tolerances``
    (``max_p50_regression``, ``max_p99_regression``, ``max_memory_regression``,
    ``max_cost_regression``, ``alpha``, ...) are those of
    :func:`silenttax.gate.performance_gate`. An inconclusive gate passes unless
    ``allow_inconclusive=False``: too few samples is not evidence of a slowdown.

    Returns:
        The gate's report, for further checks.

    Raises:
        AssertionError: the candidate regressed (or the gate was inconclusive and
            ``allow_inconclusive`` is False); the message is the report.
    """
    from silenttax.gate import performance_gate, verdict

    report = performance_gate(baseline, candidate, **tolerances)
    result = verdict(report)
    if result == "regression" or (result == "inconclusive" and not allow_inconclusive):
        label = "performance regression" if result == "regression" else "gate inconclusive"
        raise AssertionError(f"{label}: {report.findings[0].message}\n{report.to_text()}")
    return report


@dataclass
class Examples:
    """How :func:`check_component` drives a component: instances to build, split, and
    feed bad input. Only ``make`` is required; each rule runs when what it needs is
    given.
    """

    make: Callable[[], Any]
    """A recorded (or fitted) instance, new at each call."""
    halves: Callable[[], tuple[Any, Any, Any]] | None = None
    """(first half, second half, whole): two partitions of the same recordings and one
    pass over all of them (``whole`` may be None: then only the halves are merged)."""
    merge: Callable[[Any, Any], Any] | None = None
    """How two partitions merge (default: ``a.merge(b)``, returning the merged one)."""
    mismatched: Callable[[], tuple[Any, Any, str]] | None = None
    """Two instances with one setting different, and that setting's name."""
    bad_input: Callable[[], Any] | None = None
    """A call that must raise a :class:`~silenttax.errors.SilentTaxError` (bad settings,
    bad data to fit on)."""
    hot_path: Callable[[Any], Any] | None = None
    """Feeds an instance what production sends on its record path (NaN, None, strings,
    wrong shapes): must never raise, and the instance must still save and load."""
    judge: Callable[[Any], Any] | None = None
    """What judges it (default: its ``check()`` when it has one): a Report that must be
    the same after the round trip, and the same twice."""
    unsaved_settings: frozenset[str] = field(default_factory=frozenset)
    """Constructor keywords deliberately not saved (code, another process's handles)."""
    per_replica: frozenset[str] = field(default_factory=frozenset)
    """Integer fields of the snapshot that are each replica's own, not counts (a stream
    detector's position), by JSON path (``".creep.seen"``): not required to add up."""


@dataclass(frozen=True)
class Broken:
    """One rule of the component contract a component broke."""

    rule: str
    """The rule's name (see :func:`check_component`)."""
    detail: str
    """What went wrong, with the figures."""

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}")
    elif not isinstance(value, list):  # a list's items are positions (buckets), not counts
        yield prefix, value


def _ints(obj: Any) -> dict[str, int]:
    """Integer leaves of a snapshot by path (settings and headers left out)."""
    data = json.loads(obj.to_json())
    data.pop("params", None)
    return {
        path: value
        for path, value in _leaves(data)
        if isinstance(value, int)
        and not isinstance(value, bool)
        and path not in (".schema_version",)
    }


def _findings(report: Any) -> list[tuple[Any, ...]]:
    return [(f.code, f.subject, str(f.severity)) for f in report]


def check_component(
    cls: type[Any], *, examples: Examples, raise_on_failure: bool = True
) -> list[Broken]:
    """Run the conformance rules silenttax's own components pass on ``cls``; every
    broken rule is reported by name (scikit-learn's and river's ``check_estimator``,
    for monitors).

    The rules:

    - ``registered``: :func:`silenttax.load` finds the class by its kind, which is
      namespaced (``mycompany.thing``; ``silenttax.*`` is silenttax's own).
    - ``round_trip``: text, file (written atomically: no temp file left) and parsed
      dict read back through :func:`silenttax.load` to the same snapshot.
    - ``judged_the_same_after_round_trip``: the check gives the same findings on the
      loaded copy.
    - ``check_is_pure``: judging twice gives the same findings and changes nothing.
    - ``newer_schema_refused`` / ``unknown_kind_refused``: a file from a newer version
      or of another kind is a ``StateError`` naming the kind, never half-loaded.
    - ``merge_equals_one_pass``: every integer the two halves add up to in one pass
      (counts) is the merge's too, and the check gives the same verdicts.
    - ``merge_refuses_mismatched_settings``: a merge of differently configured
      instances raises a ``SilentTaxError`` naming the setting, and changes nothing.
    - ``bad_input_raises``: bad settings or data raise a ``SilentTaxError``.
    - ``hot_path_never_raises``: what production sends to the record path never
      raises, and the instance still saves and loads.
    - ``settings_saved``: every constructor keyword is in the snapshot's ``params``
      (or a field of its own), so a reload does not silently fall back to a default.

    Args:
        cls: The component class (a ``Stateful`` with ``STATE``) or a ``State`` measurement.
        examples: How to build, split and feed it.
        raise_on_failure: Raise one ``AssertionError`` naming every broken rule
            (False: return them).

    Returns:
        The broken rules (empty: it honours the contract).

    Examples:
        >>> from silenttax.monitor import LatencySketch
        >>> def make():
        ...     sketch = LatencySketch()
        ...     sketch.add_many([0.01, 0.02, 0.03])
        ...     return sketch
        >>> check_component(LatencySketch, examples=Examples(make=make))
        []
    """
    import silenttax
    from silenttax._registry import KIND_PATTERN, KINDS, target
    from silenttax._state import State
    from silenttax.errors import SilentTaxError, StateError

    broken: list[Broken] = []

    def rule(name: str, run: Callable[[], str | None]) -> None:
        try:
            problem = run()
        except Exception as exc:  # the rule's own failure is what it reports
            problem = f"raised {type(exc).__name__}: {str(exc)[:300]}"
        if problem:
            broken.append(Broken(name, problem))

    state_cls = cls if isinstance(cls, type) and issubclass(cls, State) else getattr(
        cls, "STATE", None)  # fmt: skip
    kind = getattr(state_cls, "KIND", None)
    judge = examples.judge
    if judge is None and callable(getattr(cls, "check", None)) and state_cls is not cls:

        def judge(obj: Any) -> Any:
            return obj.check()

    def registered() -> str | None:
        if not isinstance(kind, str):
            return f"{cls.__name__} has no STATE with a KIND"
        if kind not in KINDS and (not KIND_PATTERN.match(kind) or kind.startswith("silenttax.")):
            return f"kind {kind!r} is not namespaced (mycompany.thing) or is silenttax's own"
        found = target(kind)
        if found is not cls:
            return f"silenttax.load reads {kind!r} with {found!r}, not {cls.__name__}"
        return None

    def round_trip() -> str | None:
        obj = examples.make()
        text = obj.to_json()
        if json.loads(text).get("kind") != kind:
            return f"the snapshot's kind is {json.loads(text).get('kind')!r}, not {kind!r}"
        for how, source in (("text", text), ("dict", json.loads(text))):
            back = silenttax.load(source)
            if type(back) is not type(obj) or back.to_json() != text:
                return f"loaded from {how}, the snapshot differs from the saved one"
        with tempfile.TemporaryDirectory() as folder:
            path = obj.save(Path(folder) / "state.json")
            if sorted(p.name for p in Path(folder).iterdir()) != ["state.json"]:
                return "save left a temp file beside the snapshot (not atomic)"
            if silenttax.load(path).to_json() != text:
                return "loaded from its file, the snapshot differs from the saved one"
        return None

    def judged_after_round_trip() -> str | None:
        assert judge is not None
        obj = examples.make()
        before, after = _findings(judge(obj)), _findings(judge(silenttax.load(obj.to_json())))
        return None if before == after else f"findings {before} became {after} after load"

    def pure() -> str | None:
        assert judge is not None
        obj = examples.make()
        text = obj.to_json()
        first, second = _findings(judge(obj)), _findings(judge(obj))
        if first != second:
            return f"judged twice: {first} then {second}"
        return None if obj.to_json() == text else "judging changed the snapshot"

    def refused(change: str) -> Callable[[], str | None]:
        def run() -> str | None:
            data = json.loads(examples.make().to_json())
            if change == "schema":
                data["schema_version"] = 99
            else:
                data["kind"] = f"{kind}_from_the_future"
            try:
                silenttax.load(data)
            except StateError as exc:
                if change == "schema" and str(kind) not in str(exc):
                    return f"the StateError does not name the kind: {exc}"
                return None
            return "read without a StateError"

        return run

    def merged(a: Any, b: Any) -> Any:
        if examples.merge is not None:
            return examples.merge(a, b)
        out = a.merge(b)
        return a if out is None else out

    def one_pass() -> str | None:
        assert examples.halves is not None
        a, b, whole = examples.halves()
        ints_a, ints_b = _ints(a), _ints(b)
        got = merged(a, b)
        if whole is None:
            return None
        ints_whole, ints_got = _ints(whole), _ints(got)
        counts = [p for p in ints_whole if ints_a.get(p, 0) + ints_b.get(p, 0) == ints_whole[p]
                  and p not in examples.per_replica]  # fmt: skip
        wrong = [f"{p}: {ints_got.get(p)} (one pass {ints_whole[p]})" for p in counts
                 if ints_got.get(p) != ints_whole[p]]  # fmt: skip
        if wrong:
            return "counts differ from one pass: " + "; ".join(wrong[:5])
        if judge is not None:
            one, two = _findings(judge(got)), _findings(judge(whole))
            if one != two:
                return f"the merge is judged {one}, one pass {two}"
        return None

    def mismatched() -> str | None:
        assert examples.mismatched is not None
        a, b, setting = examples.mismatched()
        before = a.to_json()
        try:
            merged(a, b)
        except SilentTaxError as exc:
            if repr(setting) not in str(exc) and setting not in str(exc):
                return f"the error does not name {setting!r}: {exc}"
            return None if a.to_json() == before else "a refused merge changed the component"
        return f"instances with different {setting!r} merged"

    def bad_input() -> str | None:
        assert examples.bad_input is not None
        try:
            examples.bad_input()
        except SilentTaxError:
            return None
        except Exception as exc:
            return f"raised {type(exc).__name__} (not a silenttax error): {exc}"
        return "nothing was raised"

    def hot_path() -> str | None:
        assert examples.hot_path is not None
        obj = examples.make()
        try:
            examples.hot_path(obj)
        except Exception as exc:
            return f"the record path raised {type(exc).__name__}: {exc}"
        silenttax.load(obj.to_json())
        return None

    def settings_saved() -> str | None:
        obj = examples.make()
        state = obj.state()
        params = getattr(state, "params", None)
        if not isinstance(params, dict):
            return None
        keywords = {
            name
            for name, p in inspect.signature(type(obj).__init__).parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }
        own = set(type(state).model_fields)
        missing = keywords - set(params) - own - set(examples.unsaved_settings)
        extra = set(params) - keywords
        if missing:
            return f"constructor keywords not saved: {sorted(missing)}"
        return f"saved settings the constructor does not take: {sorted(extra)}" if extra else None

    rule("registered", registered)
    rule("round_trip", round_trip)
    if judge is not None:
        rule("judged_the_same_after_round_trip", judged_after_round_trip)
        rule("check_is_pure", pure)
    rule("newer_schema_refused", refused("schema"))
    rule("unknown_kind_refused", refused("kind"))
    if examples.halves is not None:
        rule("merge_equals_one_pass", one_pass)
    if examples.mismatched is not None:
        rule("merge_refuses_mismatched_settings", mismatched)
    if examples.bad_input is not None:
        rule("bad_input_raises", bad_input)
    if examples.hot_path is not None:
        rule("hot_path_never_raises", hot_path)
    if state_cls is not cls:
        rule("settings_saved", settings_saved)
    if broken and raise_on_failure:
        raise AssertionError(
            f"{cls.__name__} breaks {len(broken)} rule(s) of the component contract:\n"
            + "\n".join(f"  - {b}" for b in broken)
        )
    return broken
