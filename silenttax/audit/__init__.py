"""The model audit: every module on one model and its data, judged, saved and rendered.

``silenttax audit --demo`` runs it on a bundled real model and dataset;
``silenttax audit MODEL`` on yours. The result saves as a directory a later
``silenttax report`` re-judges without the model.

Examples:
    >>> from silenttax.audit import Check, judge
    >>> from silenttax.monitor import LatencyMonitor
    >>> monitor = LatencyMonitor(name="ranker")
    >>> for ms in range(1, 200):
    ...     monitor.record(ms / 1000)
    >>> report = judge([Check(rule="latency", snapshots={"current": "latency"})],
    ...                {"latency": monitor.state()})
    >>> sorted({f.code for f in report})
    ['latency.quantile']
"""

from silenttax.audit._audit import Audit, Progress, audit, demo_audit
from silenttax.audit._judge import RULES, Check, Manifest, judge, judge_directory, read_manifest

__all__ = [
    "RULES",
    "Audit",
    "Check",
    "Manifest",
    "Progress",
    "audit",
    "demo_audit",
    "judge",
    "judge_directory",
    "read_manifest",
]
