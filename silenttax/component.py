"""Build your own monitor: the parts every built-in component is made of, public.

A component records on the hot path, snapshots into a versioned :class:`State`,
merges with its replicas by declared rules, and is judged by a pure check that
returns a :class:`~silenttax.report.Report`. Registered with :func:`register`, it
is read by :func:`silenttax.load`, merged by :func:`silenttax.merge` and
``silenttax merge``, carried by a serving fleet's snapshot files
(``instrument(app, checks=[component])``), exported by the Prometheus collector and
judged at ``/silenttax/check`` and by ``silenttax audit --check`` — like the built-in
ones. :func:`silenttax.testing.check_component` tells whether it honours the
contract the built-ins pass. See ``docs/custom-monitors.md``.

Examples:
    >>> from typing import Annotated, ClassVar
    >>> import silenttax
    >>> from silenttax.component import SAME, SUM, State, Stateful, register, register_code
    >>> from silenttax.report import Report, make_finding
    >>> class QueueState(State):
    ...     KIND: ClassVar[str] = "example.queue"
    ...     params: Annotated[dict[str, int], SAME]
    ...     over: Annotated[int, SUM] = 0
    ...     seen: Annotated[int, SUM] = 0
    >>> _ = register_code("example.queue_over", "stability", "The queue is over its limit.")
    >>> @register("example.queue")
    ... class Queue(Stateful[QueueState]):
    ...     STATE = QueueState
    ...     def __init__(self, limit: int = 10) -> None:
    ...         self.limit, self.over, self.seen = limit, 0, 0
    ...     def record(self, depth: int) -> None:
    ...         self.seen += 1
    ...         self.over += depth > self.limit
    ...     def state(self) -> QueueState:
    ...         return QueueState(params={"limit": self.limit}, over=self.over, seen=self.seen)
    ...     @classmethod
    ...     def from_state(cls, state: QueueState) -> "Queue":
    ...         queue = cls(**state.params)
    ...         queue.over, queue.seen = state.over, state.seen
    ...         return queue
    ...     def merge(self, other: "Queue") -> "Queue":
    ...         merged = merge_states(self.state(), other.state())
    ...         self.over, self.seen = merged.over, merged.seen
    ...         return self
    ...     def check(self) -> Report:
    ...         bad = self.seen and self.over / self.seen > 0.1
    ...         return Report(findings=[make_finding(
    ...             "example.queue_over", severity="warning" if bad else "ok",
    ...             subject="queue", message=f"{self.over} of {self.seen} over")])
    >>> q = Queue(limit=5)
    >>> for depth in (1, 9, 2):
    ...     q.record(depth)
    >>> silenttax.load(q.to_json()).check().worst
    <Severity.WARNING: 'warning'>
"""

from silenttax._component import Check, load_check
from silenttax._merge import (
    ALL,
    EACH,
    FIRST,
    MAX,
    MIN,
    SAME,
    SKETCH,
    SUM,
    UNION,
    Rule,
    WeightedMean,
    rule_of,
    same_settings,
    since,
)
from silenttax._merge import merge as merge_states
from silenttax._registry import ENTRY_POINTS, KIND_PATTERN, register, registered
from silenttax._state import State, Stateful, settings, with_policy
from silenttax.report._codes import register_code

__all__ = [
    "ALL",
    "EACH",
    "ENTRY_POINTS",
    "FIRST",
    "KIND_PATTERN",
    "MAX",
    "MIN",
    "SAME",
    "SKETCH",
    "SUM",
    "UNION",
    "Check",
    "Rule",
    "State",
    "Stateful",
    "WeightedMean",
    "load_check",
    "merge_states",
    "register",
    "register_code",
    "registered",
    "rule_of",
    "same_settings",
    "settings",
    "since",
    "with_policy",
]
