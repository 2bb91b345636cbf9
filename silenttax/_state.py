"""Versioned JSON state: the one base for everything silenttax saves.

A :class:`State` is a frozen pydantic model that carries its ``kind`` and
``schema_version`` in the JSON itself. Loading checks both, so a file of
another kind or from a newer silenttax fails with a clear
:class:`~silenttax.errors.StateError` instead of a half-loaded object. Nothing
is ever pickled. NaN and infinities round-trip (``NaN``/``Infinity`` literals,
as Python's ``json`` module writes them).

Examples:
    >>> from typing import ClassVar
    >>> class Counter(State):
    ...     KIND: ClassVar[str] = "example.counter"
    ...     count: int = 0
    >>> text = Counter(count=3).to_json()
    >>> text
    '{"kind":"example.counter","schema_version":1,"count":3}'
    >>> Counter.from_json(text).count
    3
"""

from __future__ import annotations

import inspect
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from silenttax.errors import InputError, SilentTaxError, StateError

__all__ = ["State", "Stateful", "settings", "with_policy"]


class State(BaseModel):
    """Base class for versioned, JSON-serializable state (never pickle).

    Subclasses set ``KIND`` (a stable dotted name) and bump ``SCHEMA_VERSION``
    when their fields change incompatibly, overriding :meth:`_migrate` to read
    older files.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        ser_json_inf_nan="constants",
        validate_default=True,
        defer_build=True,
    )

    KIND: ClassVar[str] = "silenttax.state"
    SCHEMA_VERSION: ClassVar[int] = 1

    kind: str = Field(default="", description="What this state is; checked on load.")
    schema_version: int = Field(
        default=0, description="Format version of this kind; a newer one than known fails."
    )

    @model_validator(mode="before")
    @classmethod
    def _check_header(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        kind = data.get("kind") or cls.KIND
        if kind != cls.KIND:
            raise StateError(f"expected a {cls.KIND!r} state, got one of kind {kind!r}")
        version = data.get("schema_version") or cls.SCHEMA_VERSION
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise StateError(f"{cls.KIND!r} state has an invalid schema_version {version!r}")
        if version > cls.SCHEMA_VERSION:
            raise StateError(
                f"{cls.KIND!r} state has schema_version {version}, newer than the "
                f"{cls.SCHEMA_VERSION} this silenttax reads; upgrade silenttax to load it"
            )
        if version < cls.SCHEMA_VERSION:
            data = cls._migrate(dict(data), version)
        return {**data, "kind": cls.KIND, "schema_version": cls.SCHEMA_VERSION}

    @classmethod
    def _migrate(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Turn a state written with an older ``version`` into the current layout."""
        raise StateError(
            f"{cls.KIND!r} state has schema_version {version}; this silenttax reads only "
            f"version {cls.SCHEMA_VERSION}"
        )

    def to_json(self, *, indent: int | None = None) -> str:
        """Serialize to JSON text (NaN and infinities kept as ``NaN``/``Infinity``)."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse JSON written by :meth:`to_json`.

        Raises:
            StateError: the text is not valid JSON, is of another kind, from a
                newer schema version, or does not match the fields.
        """
        try:
            return cls.model_validate_json(text)
        except StateError:
            raise
        except SilentTaxError as exc:  # a custom __init__ refusing a saved setting
            raise StateError(f"cannot read {cls.KIND!r} state: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            raise StateError(f"cannot read {cls.KIND!r} state: {problems}") from exc
        except (TypeError, ValueError, ArithmeticError) as exc:
            # a custom __init__ missing a required saved field (found by atheris)
            raise StateError(f"cannot read {cls.KIND!r} state: {exc}") from exc

    def save(
        self, path: str | os.PathLike[str], *, indent: int | None = None, durable: bool = True
    ) -> Path:
        """Write JSON to ``path`` atomically and durably (temp file, fsync, rename: a
        crash never leaves half a file; ``durable=False`` skips the fsync, for a file
        rewritten every few seconds that other processes read from the page cache)."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # as open() would: mkstemp makes it 0600
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_json(indent=indent))
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a file written by :meth:`save`.

        Raises:
            StateError: the file cannot be read or does not hold this kind of state.
        """
        return cls.from_json(read_state(path, kind=cls.KIND))


S = TypeVar("S", bound=State)

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask (read from /proc where it is there: setting it to read it is
    not thread-safe, so elsewhere that is done under a lock)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


MAX_STATE_BYTES = 256 * 1024 * 1024
"""The largest state file read (256 MiB; a state is KiB to a few MiB): a bigger one is a
``StateError``, never read into memory."""


def read_state(path: str | os.PathLike[str], *, kind: str = "silenttax") -> bytes:
    """The bytes of a state file, bounded by :data:`MAX_STATE_BYTES`.

    Raises:
        StateError: unreadable, not a regular file, or too large.
    """
    shown = str(path) if len(str(path)) <= 200 else str(path)[:200] + "..."
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_STATE_BYTES:
                raise StateError(
                    f"{shown!r} holds {size} bytes: more than the {MAX_STATE_BYTES} a "
                    f"{kind} state file may hold"
                )
            data = handle.read(MAX_STATE_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read a {kind} state from {shown!r}: {exc}") from exc
    if len(data) > MAX_STATE_BYTES:  # a pipe or a file still growing
        raise StateError(f"{shown!r}: more than the {MAX_STATE_BYTES} bytes a state may hold")
    return data


class Stateful(Generic[S]):
    """Mixin for a component whose snapshot is a :class:`State`: it owns the plumbing.

    A component defines ``STATE`` (its snapshot class), :meth:`state` and
    :meth:`from_state`; this mixin gives it ``to_json``, ``from_json``,
    ``save`` (atomic, returns the path) and ``load``, the same everywhere, and
    :func:`silenttax.load` finds it by the snapshot's ``kind``.
    """

    STATE: ClassVar[type[State]]
    RENAMED: ClassVar[Mapping[str, str]] = {}
    """Settings renamed since files were first saved: old name -> new name."""

    def state(self) -> S:
        """The snapshot: everything needed to rebuild and judge this component."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: S) -> Self:
        """Rebuild the component from :meth:`state`."""
        raise NotImplementedError

    def to_json(self, *, indent: int | None = None) -> str:
        """The snapshot as JSON text."""
        return self.state().to_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Rebuild from :meth:`to_json` output.

        Raises:
            StateError: invalid JSON, another kind, or a newer schema version.
        """
        state: Any = cls.STATE.from_json(text)
        return cls.rebuild(state)

    @classmethod
    def rebuild(cls, state: S) -> Self:
        """:meth:`from_state` for a state read from outside: saved settings or contents the
        component refuses become a :class:`StateError` naming the kind and the problem.

        Raises:
            StateError: the state's contents are not a valid component.
        """
        try:
            return cls.from_state(state)
        except StateError:
            raise
        except (SilentTaxError, TypeError, ValueError, KeyError, IndexError, AttributeError,
                OverflowError, ZeroDivisionError) as exc:  # fmt: skip
            raise StateError(f"cannot rebuild {cls.STATE.KIND!r} from its state: {exc}") from exc

    def save(self, path: str | os.PathLike[str], *, indent: int | None = None) -> Path:
        """Write the snapshot as JSON, atomically; returns the path."""
        return self.state().save(path, indent=indent)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a file written by :meth:`save`.

        Raises:
            StateError: the file cannot be read or holds another kind of state.
        """
        state: Any = cls.STATE.load(path)
        return cls.rebuild(state)


_KEYWORDS: dict[type[Any], frozenset[str]] = {}


def _keywords(cls: type[Any]) -> frozenset[str]:
    """The constructor's parameter names (read once per class: a fleet scrape rebuilds
    thousands of components, and ``inspect.signature`` is slow)."""
    known = _KEYWORDS.get(cls)
    if known is None:
        known = _KEYWORDS[cls] = frozenset(inspect.signature(cls.__init__).parameters)
    return known


def settings(cls: type[Stateful[Any]], params: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor keywords from a saved state's settings.

    A setting renamed since the file was written (``cls.RENAMED``) is read under
    its new name. The keywords are checked against the constructor's own
    signature, so a setting the class does not take is a clear error, never a
    ``TypeError`` from deep inside :func:`silenttax.load`.

    Raises:
        StateError: a setting is not a keyword of ``cls``.

    Examples:
        >>> from silenttax.monitor import LatencyMonitor
        >>> settings(LatencyMonitor, {"min_regression": 0.2})  # the old name
        {'min_effect': 0.2}
    """
    accepted = _keywords(cls)
    out: dict[str, Any] = {}
    for name, value in params.items():
        new = name if name in accepted else cls.RENAMED.get(name, name)
        if new not in accepted or new == "self":
            raise StateError(
                f"{cls.STATE.KIND!r} state has a setting {name!r} that {cls.__name__} does not "
                "take (written by another silenttax version?)"
            )
        out[new] = value
    return out


C = TypeVar("C", bound=Stateful[Any])


def with_policy(
    cls: type[C], snapshot: Any, policy: Mapping[str, Any], *, role: str = "current"
) -> C:
    """Rebuild ``cls`` from ``snapshot`` (a ``cls`` or its state) with some settings
    replaced: how a pure check judges a snapshot under a policy other than the one
    it was recorded with.

    ``None`` keeps the saved setting. The constructor validates the others, so
    an out-of-range policy is the same clear error as in the constructor.

    Raises:
        InputError: ``snapshot`` is neither a ``cls`` nor its state (named ``role``).

    Examples:
        >>> from silenttax.monitor import LatencyMonitor
        >>> state = LatencyMonitor(min_effect=0.1).state()
        >>> with_policy(LatencyMonitor, state, {"min_effect": 0.3, "slo": None}).min_effect
        0.3
    """
    state: Any = snapshot.state() if isinstance(snapshot, cls) else snapshot
    if not isinstance(state, cls.STATE):
        raise InputError(
            f"{role} must be a {cls.__name__} or its state, got {type(snapshot).__name__}"
        )
    chosen = {name: value for name, value in policy.items() if value is not None}
    if chosen:
        saved: Mapping[str, Any] = cast(Any, state).params  # every such state saves params
        state = state.model_copy(update={"params": {**saved, **chosen}})
    return cls.from_state(state)
