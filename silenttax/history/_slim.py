"""What a rollup keeps of the snapshots it merges.

A rollup (an hour or a day of one stream, :meth:`History.compact`) is the merged
snapshot, stored for 90 days (hours) or for good (days); its figures are extracted
*before* these two reductions, so they are those of the full merge:

- **column summaries** (a ``FeatureHealth`` profile, a drift reference) are coarsened to
  :data:`ROLLUP_BUDGET` buckets a column (merging with a coarser summary is still exact,
  ``silenttax._summary``): a 20-column FeatureHealth goes from ~53 KB to ~10-20 KB. The
  price: a KS distance read from a rollup is never above the exact one and at most the
  largest bucket's mass below it, 0.2-0.85% of the rows (normal, lognormal, uniform
  columns) instead of 0.06-0.25% fitted: a drift test against it is more conservative.
- **the creep watch's running state** (the latencies not yet folded and the level it
  learnt, of whichever replica came first in the merge: meaningless for an hour of a
  fleet) is reset; its creep events and hiccups are kept. Half of a LatencyMonitor blob.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ROLLUP_BUDGET", "slim"]

ROLLUP_BUDGET = 1024
"""Buckets a numeric column summary keeps in a rollup (4,096 when fitted)."""

_RUNNING: dict[str, Any] = {"seen": 0, "pending": [], "tracks": {}, "last_time": None}
"""A creep watch's running state, reset (told by its fields: the monitor's private
``CreepState`` is not imported across features)."""
_CREEP = frozenset({*_RUNNING, "events", "hiccups"})


def slim(state: Any, *, summaries: bool = True) -> Any:
    """``state`` (a pydantic State) with its column summaries coarsened (unless
    ``summaries=False``) and its creep watches reset; the same object when there is
    nothing to reduce."""
    from pydantic import BaseModel

    from silenttax._summary import NumericSummary, merge_summaries

    coarse = NumericSummary(budget=ROLLUP_BUDGET)

    def walk(value: Any) -> Any:
        if isinstance(value, NumericSummary):
            if not summaries or (value.budget <= ROLLUP_BUDGET and value.exact_values is None):
                return value
            return merge_summaries(value, coarse)
        if isinstance(value, BaseModel) and _CREEP <= type(value).model_fields.keys():
            if all(getattr(value, k) == v for k, v in _RUNNING.items()):
                return value
            return value.model_copy(update=dict(_RUNNING, pending=[], tracks={}))
        if isinstance(value, BaseModel):
            changed = {}
            for name in type(value).model_fields:
                old = getattr(value, name)
                new = walk(old)
                if new is not old:
                    changed[name] = new
            return value.model_copy(update=changed) if changed else value
        if isinstance(value, dict):
            out = {k: walk(v) for k, v in value.items()}
            return out if any(out[k] is not v for k, v in value.items()) else value
        if isinstance(value, list):
            items = [walk(v) for v in value]
            return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
        return value

    return walk(state)
