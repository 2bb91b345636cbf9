"""Batch analysis of the span buffer, in NumPy: linking, self time, GC attribution.

Pure functions of the buffer's rows (see ``_spans._FIELDS``), testable with
hand-built arrays; the tracer calls them off the per-span path.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from silenttax._sketch import LatencySketch
from silenttax.trace._runtime import overlap_ns
from silenttax.trace._spans import _END, _PARENT, _SEQ, _START

_Array = npt.NDArray[np.int64]


class _Requests(NamedTuple):
    """Spans of complete requests (rows of the span buffer) with figures computed in NumPy."""

    rows: _Array  # (spans, 5): key, start, end, seq, parent seq
    request: _Array  # per span: index of its request in ``roots``
    duration: _Array  # per span, overhead-corrected, ns
    self_ns: _Array  # per span, overhead-corrected, ns
    gc_ns: _Array  # per span: garbage-collection pauses inside its self time, ns
    roots: _Array  # row of each request's root span
    attributes: dict[int, dict[str, Any]]  # by span seq, only spans that have any
    errors: dict[int, str]  # by span seq: exception type name

    @property
    def n_requests(self) -> int:
        return len(self.roots)

    def split(self, requests: list[int]) -> list[_Requests]:
        """The given requests (sorted indices), one each: one gather, then views of it."""
        chosen = np.zeros(self.n_requests, dtype=bool)
        chosen[requests] = True
        rows = np.flatnonzero(chosen[self.request])
        rows = rows[np.argsort(self.request[rows], kind="stable")]
        bounds = np.searchsorted(self.request[rows], [*requests, self.n_requests]).tolist()
        own_rows, duration = self.rows[rows], self.duration[rows]
        self_ns, gc_ns = self.self_ns[rows], self.gc_ns[rows]
        is_root = np.zeros(len(self.rows), dtype=bool)
        is_root[self.roots] = True
        root_at = np.flatnonzero(is_root[rows])  # one root per request, in request order
        zeros = np.zeros(len(rows), dtype=np.int64)
        out = []
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            attributes: dict[int, dict[str, Any]] = {}
            errors: dict[int, str] = {}
            if self.attributes or self.errors:
                seqs = own_rows[lo:hi, _SEQ].tolist()
                attributes = {q: self.attributes[q] for q in seqs if q in self.attributes}
                errors = {q: self.errors[q] for q in seqs if q in self.errors}
            out.append(
                _Requests(
                    own_rows[lo:hi],
                    zeros[lo:hi],
                    duration[lo:hi],
                    self_ns[lo:hi],
                    gc_ns[lo:hi],
                    root_at[i : i + 1] - lo,
                    attributes,
                    errors,
                )
            )
        return out


def _analyse(
    rows: _Array, overhead: int, pauses: tuple[_Array, _Array] | None = None
) -> tuple[_Requests, _Array]:
    """Link spans to parents and requests; returns the complete requests and the rest.

    ``pauses`` (sorted, disjoint garbage-collection pauses) are matched to each
    span's self time.

    Spans whose request has not finished yet (a concurrent request in another
    thread, or a parent still open) are returned to be carried to the next batch.
    """
    n = len(rows)
    seq = rows[:, _SEQ]
    parent_seq = rows[:, _PARENT]
    # Sequence numbers are dense: a lookup table from seq to row links children to parents.
    low = int(seq.min())
    span = int(seq.max()) - low + 1
    if span <= 8 * n:
        row_of = np.full(span + 1, -1, dtype=np.int64)  # the extra cell: parents not here
        row_of[seq - low] = np.arange(n)
        offset = parent_seq - low
        parent_row = row_of[np.where((offset >= 0) & (offset < span), offset, span)]
    else:  # spans carried from long ago: search instead
        order = np.argsort(seq, kind="stable")
        sorted_seq = seq[order]
        pos = np.minimum(np.searchsorted(sorted_seq, parent_seq), n - 1)
        parent_row = np.where(sorted_seq[pos] == parent_seq, order[pos], -1)
    is_root = parent_seq < 0
    # Walk up to the root (pointer jumping); -1 marks a chain whose root is not here yet.
    root = np.where(is_root, np.arange(n), parent_row)
    depth = np.where(is_root, 0, 1)
    while True:
        climbing = (root >= 0) & ~is_root[np.maximum(root, 0)]
        if not climbing.any():
            break
        root = np.where(climbing, parent_row[np.maximum(root, 0)], root)
        depth = depth + climbing
    complete = root >= 0
    raw = rows[:, _END] - rows[:, _START]
    has_parent = complete & (parent_row >= 0)
    child_ns = np.bincount(parent_row[has_parent], weights=raw[has_parent], minlength=n)
    n_child = np.bincount(parent_row[has_parent], minlength=n)
    n_desc = np.zeros(n, dtype=np.int64)
    for level in range(int(depth[complete].max(initial=0)), 0, -1):
        level_rows = np.flatnonzero(complete & (depth == level))
        n_desc += np.bincount(
            parent_row[level_rows], weights=n_desc[level_rows] + 1, minlength=n
        ).astype(np.int64)
    duration = np.maximum(0, raw - n_desc * overhead)
    self_ns = np.maximum(0, raw - child_ns.astype(np.int64) - n_child * overhead)
    if pauses is not None and pauses[0].size:
        gc_ns = overlap_ns(rows[:, _START], rows[:, _END], *pauses)
        child_gc = np.bincount(parent_row[has_parent], weights=gc_ns[has_parent], minlength=n)
        gc_ns = np.minimum(self_ns, np.maximum(0, gc_ns - child_gc.astype(np.int64)))
    else:
        gc_ns = np.zeros(n, dtype=np.int64)
    roots = np.flatnonzero(complete & is_root)
    request_of_root = np.full(n, -1, dtype=np.int64)
    request_of_root[roots] = np.arange(roots.size)
    if complete.all():
        requests = _Requests(rows, request_of_root[root], duration, self_ns, gc_ns, roots, {}, {})
        return requests, rows[:0]
    keep = np.flatnonzero(complete)
    remap = np.full(n, -1, dtype=np.int64)
    remap[keep] = np.arange(keep.size)
    requests = _Requests(
        rows[keep],
        request_of_root[root[keep]],
        duration[keep],
        self_ns[keep],
        gc_ns[keep],
        remap[roots],
        {},
        {},
    )
    return requests, rows[~complete]


def _take(store: dict[int, Any], seqs: _Array) -> dict[int, Any]:
    """Move the entries of ``store`` whose span is among ``seqs`` into a new dict."""
    if not store:
        return {}
    keys = list(store)  # a snapshot: other threads may add entries meanwhile
    found = np.isin(np.asarray(keys, dtype=np.int64), seqs)
    return {k: store.pop(k) for k, f in zip(keys, found.tolist(), strict=True) if f}


class _Stats:
    """Mutable accumulators behind a Breakdown entry."""

    __slots__ = (
        "errors",
        "first",
        "first_self",
        "gc",
        "requests",
        "sketch",
        "spans",
        "sq",
        "stage",
        "total",
        "total2",
    )

    def __init__(self, stage: str = "") -> None:
        self.stage = stage
        self.spans = 0
        self.requests = 0
        self.total = 0.0
        self.total2 = 0.0  # self time (span stats)
        self.sq = 0.0  # sum of squared per-request time (stage stats)
        self.errors = 0
        self.gc = 0.0  # garbage-collection pauses inside the stage's self time
        self.first: float | None = None
        self.first_self: float | None = None
        self.sketch = LatencySketch()
