"""The engine-neutral part of scale-out: one partition -> snapshot bytes; snapshots -> one.

Every silenttax reference (``DriftDetector``, ``FeatureHealth``,
``LatencySketch``) is a small mergeable snapshot, so a dataset of any size is
summarised where it lives: each partition becomes a snapshot of a few KiB,
and snapshots are merged in a tree. No raw rows travel, and no column is
shuffled. An engine adapter needs three calls:

- :func:`fit_partition` (map): a partition's reference snapshot, as JSON bytes;
- :func:`check_partition` (map): a partition's current-data snapshot, judged
  later against a fitted reference (a drift window, or current profiles);
- :func:`merge_partials` (combine, associative): several snapshots as one.

Then :func:`finish` turns the root snapshot into the component (a fit) or the
``Report`` (a check). Bytes are plain JSON (never pickle), so they cross any
engine's serialisation. An empty partition gives ``b""``, which merges as
nothing.

Examples:
    >>> from silenttax.drift import DriftDetector
    >>> parts = [{"x": [1.0, 2.0, 3.0]}, {"x": []}, {"x": [4.0, 5.0]}]
    >>> template = DriftDetector()
    >>> root = merge_partials([fit_partition(template, p) for p in parts])
    >>> finish(root).state().rows
    5
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from silenttax._input import to_table
from silenttax._registry import load
from silenttax.errors import InputError

__all__ = [
    "check_columns",
    "check_partition",
    "finish",
    "fit_partition",
    "from_settings",
    "merge_partials",
    "template_settings",
]

_CHECK = "silenttax.check_partial"


def _component(reference: Any) -> Any:
    """A fitted component, from itself or its saved JSON (what engines ship to workers)."""
    return load(reference) if isinstance(reference, str | bytes) else reference


def _template(component: Any) -> Any:
    from silenttax.drift import DriftDetector
    from silenttax.features import FeatureHealth
    from silenttax.monitor import LatencySketch

    if not isinstance(component, DriftDetector | FeatureHealth | LatencySketch):
        raise InputError(
            "component: a DriftDetector, FeatureHealth or LatencySketch, got "
            f"{type(component).__name__}"
        )
    return component


def template_settings(template: Any) -> tuple[str, dict[str, Any]]:
    """A template as plain data (its class name and settings): what engines ship to
    workers and hash; :func:`from_settings` rebuilds it."""
    from silenttax.monitor import LatencySketch

    component = _template(template)
    if isinstance(component, LatencySketch):
        return "LatencySketch", {
            "relative_accuracy": component.relative_accuracy,
            "max_buckets": component._custom_buckets,
        }
    return type(component).__name__, dict(component._params())


def from_settings(settings: tuple[str, dict[str, Any]]) -> Any:
    """An unfitted component from :func:`template_settings`."""
    from silenttax.drift import DriftDetector
    from silenttax.features import FeatureHealth
    from silenttax.monitor import LatencySketch

    kinds: dict[str, Any] = {
        "DriftDetector": DriftDetector,
        "FeatureHealth": FeatureHealth,
        "LatencySketch": LatencySketch,
    }
    name, params = settings
    return kinds[name](**params)


def fit_partition(template: Any, partition: Any) -> bytes:
    """The snapshot of ``partition`` fitted with ``template``'s settings, as JSON bytes.

    ``template`` is a ``DriftDetector`` or ``FeatureHealth`` (its settings are
    used, not its fit) and ``partition`` any table silenttax reads; or a
    ``LatencySketch`` and an array of seconds. An empty partition gives ``b""``.
    """
    from silenttax.monitor import LatencySketch

    component = from_settings(template_settings(template))
    if isinstance(component, LatencySketch):
        component.add_many(partition)
        return component.to_json().encode() if component.count or component.invalid else b""
    table = to_table(partition, argument="partition")
    if table.n_rows == 0:
        return b""
    return component.fit(table).to_json().encode()  # type: ignore[no-any-return]


def check_partition(reference: Any, partition: Any) -> bytes:
    """What ``partition`` of the *current* data contributes to a check against
    ``reference`` (a fitted ``DriftDetector`` or ``FeatureHealth``), as JSON bytes.

    For a detector this is a :class:`~silenttax.drift.DriftWindow` (the
    partition summarised on the reference's grid, with how each column had to
    be read); for a ``FeatureHealth``, the partition's profiles under the
    reference's settings. ``reference`` may be the component or its saved JSON.
    """
    from silenttax.drift import DriftDetector
    from silenttax.features import FeatureHealth

    reference = _component(reference)
    if isinstance(reference, DriftDetector):
        table = to_table(partition, argument="partition")
        if table.n_rows == 0:
            return b""
        return reference.window(table).to_json().encode()
    if isinstance(reference, FeatureHealth):
        return fit_partition(reference, partition)
    raise InputError(
        f"reference: a fitted DriftDetector or FeatureHealth, got {type(reference).__name__}"
    )


def check_columns(reference: Any, expected: str, available: Sequence[str]) -> list[str]:
    """Which of the current data's ``available`` columns a check against ``reference``
    reads, after checking that ``reference`` is a fitted ``expected`` (``"DriftDetector"``
    or ``"FeatureHealth"``): an engine projects the data on them before reading it.

    A detector reads its fitted columns (all of them when none is there: the check then
    says what is missing); a ``FeatureHealth`` its selected ``columns``, if any.

    Raises:
        InputError: ``reference`` is not a ``expected``.
        NotFittedError: it is not fitted.
    """
    from silenttax.drift import DriftDetector
    from silenttax.features import FeatureHealth

    if expected == "DriftDetector" and isinstance(reference, DriftDetector):
        fitted = reference.reference  # NotFittedError before any work
        return [c for c in available if c in fitted] or list(available)
    if expected == "FeatureHealth" and isinstance(reference, FeatureHealth):
        reference.profiles  # noqa: B018 - NotFittedError before any work
        if reference.columns is None:
            return list(available)
        return [c for c in reference.columns if c in available]
    argument = "detector" if expected == "DriftDetector" else "health"
    raise InputError(f"{argument}: expected a {expected}, got {type(reference).__name__}")


def merge_partials(partials: Iterable[bytes | str]) -> bytes:
    """Merge snapshot bytes (from :func:`fit_partition`, :func:`check_partition` or this
    function) into one; ``b""`` parts are skipped. Associative, so any tree works.

    Raises:
        InputError: the snapshots are of different kinds or were made with different
            settings (named).
    """
    merged: Any = None
    for index, part in enumerate(partials):
        if not part:
            continue
        component = load(part)
        if merged is None:
            merged = component
            continue
        if type(component) is not type(merged):
            raise InputError(
                f"partial {index}: a {type(component).__name__} cannot merge with a "
                f"{type(merged).__name__}"
            )
        mine, theirs = _columns(merged), _columns(component)
        if mine != theirs:
            raise InputError(
                f"partitions disagree on their columns: {sorted(mine ^ theirs)} are in some "
                "partitions and not in others"
            )
        merged = merged.merge(component)  # components merge in place, snapshots into new
    return b"" if merged is None else merged.to_json().encode()


def _columns(component: Any) -> set[str]:
    """The columns a partition's snapshot covers (none for a sketch)."""
    from silenttax.drift import DriftDetector, DriftWindow
    from silenttax.features import FeatureHealth

    if isinstance(component, DriftWindow):
        return set(component.columns)
    if isinstance(component, DriftDetector):
        return set(component.reference)
    if isinstance(component, FeatureHealth):
        return set(component.profiles)
    return set()


def finish(root: bytes | str, reference: Any = None) -> Any:
    """The merged root as a result: the fitted component (a fit), or with
    ``reference`` the ``Report`` of checking the merged current data against it.

    Raises:
        InputError: nothing was summarised (every partition was empty).
    """
    if not root:
        raise InputError("data: has no rows (every partition was empty)")
    component = load(root)
    if reference is None:
        return component
    from silenttax.drift import DriftDetector
    from silenttax.features import FeatureHealth, check_health

    reference = _component(reference)
    if isinstance(reference, DriftDetector):
        return reference.check(component)
    if isinstance(reference, FeatureHealth):
        return check_health(component, reference)
    raise InputError(
        f"reference: a fitted DriftDetector or FeatureHealth, got {type(reference).__name__}"
    )
