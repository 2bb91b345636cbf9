"""How an audit's snapshots are judged: one rule per check, the same live and from files.

An audit saves every snapshot it measured under ``snapshots/`` and a manifest
(``audit.json``) naming, for each check, the rule and the snapshot files it
reads. :func:`judge` applies the rules to snapshots in memory (during the
audit) or read back with :func:`silenttax.load` (``silenttax report DIR``), so
a saved audit is re-judged without rerunning the model — under today's
silenttax, and with the policy given here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from silenttax._state import State
from silenttax.errors import InputError, StateError
from silenttax.report import Report, Severity

__all__ = ["MANIFEST", "Check", "Manifest", "judge", "judge_directory", "read_manifest"]

MANIFEST = "audit.json"
MANIFEST_KIND = "silenttax.audit_manifest"


class Check(BaseModel):
    """One check of an audit: a rule over named snapshots."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    """Which rule judges it (a key of :data:`RULES`)."""
    snapshots: dict[str, str]
    """Role (``current``, ``baseline``, ...) -> snapshot name (file ``snapshots/<name>.json``)."""
    subject: str | None = None
    """What the findings are about, when the rule's own subject would be ambiguous
    (two gates in one audit both judge a "candidate")."""


class Manifest(BaseModel):
    """What an audit directory holds and how to judge it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = MANIFEST_KIND
    schema_version: int = 1
    title: str = "silenttax audit"
    checks: list[Check]
    context: dict[str, Any] = {}


def _drift(s: Mapping[str, Any]) -> Any:
    return s["reference"].check(s["current"])


def _health(s: Mapping[str, Any]) -> Any:
    from silenttax.features import check_health

    return check_health(s["current"], s["reference"])


def _trace(s: Mapping[str, Any]) -> Any:
    from silenttax.trace import check_breakdown

    return check_breakdown(s["current"], s.get("baseline"))


def _latency(s: Mapping[str, Any]) -> Any:
    return s["current"].check(s.get("baseline"))


def _check(s: Mapping[str, Any]) -> Any:
    return s["current"].check()


def _report(s: Mapping[str, Any]) -> Any:
    return s["current"].report()


def _quantization(s: Mapping[str, Any]) -> Any:
    return s["current"].report(s.get("pricing"))


def _gate(s: Mapping[str, Any]) -> Any:
    from silenttax.gate import performance_gate

    if "baseline" in s:
        return performance_gate(s["baseline"], s["current"])
    return performance_gate(s["current"])


def _gate_runs(s: Mapping[str, Any]) -> Any:
    """The gate across runs: ``baseline_<i>`` and ``current_<i>`` are one result per
    process (the spread between processes is in the interval)."""
    from silenttax.gate import performance_gate

    def side(prefix: str) -> list[Any]:
        return [s[k] for k in sorted(s) if k.startswith(prefix)]

    return performance_gate(side("baseline_"), side("current_"))


def _saved(s: Mapping[str, Any]) -> Any:
    report = s["current"]
    if not isinstance(report, Report):
        raise InputError(f"a saved report was expected, got {type(report).__name__}")
    return report


#: rule -> function of the loaded snapshots by role.
RULES: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "drift": _drift,
    "health": _health,
    "trace": _trace,
    "latency": _latency,
    "check": _check,
    "report": _report,
    "quantization": _quantization,
    "gate": _gate,
    "gate_runs": _gate_runs,
    "saved": _saved,
}


#: Share of contended rounds above which the serve's monitors and traces (which keep
#: every request) give no WARNING: what they measured was partly the neighbour.
MAX_CONTENDED = 0.10


def machine_busy(report: Report, machine: Any) -> Report:
    """Performance findings measured while the machine was busy are not verdicts.

    ``machine`` is the interleaved :class:`~silenttax.benchmark.Comparison` the
    findings were measured in. Monitors and traces keep every request, contended or
    not (unlike the paired gate, which leaves contended rounds out), so when more
    than :data:`MAX_CONTENDED` of its rounds were contended (fewer free cores than
    the measurement needs), every WARNING-or-above finding of the
    report becomes INFO, its message prefixed "inconclusive: machine busy" and the
    contention figures added to its evidence. A quiet measurement passes unchanged.
    """
    share = float(getattr(machine, "contended_share", 0.0))
    if not (getattr(machine, "busy", False) or share > MAX_CONTENDED):
        return report
    figures = {**(machine.contention or {}), "contended_rounds": round(share, 3)}
    note = (
        f"inconclusive: machine busy ({share:.0%} of the measurement had fewer free cores "
        f"than it needs; other processes used a median "
        f"{figures.get('other_cores_median') or 0:g} cores) — "
    )
    return report.model_copy(
        update={
            "findings": tuple(
                f.model_copy(
                    update={
                        "severity": Severity.INFO,
                        "message": note + f.message,
                        "evidence": {
                            **f.evidence,
                            "verdict": "inconclusive",
                            "reason": "machine busy",
                            "contention": figures,
                            "severity_if_quiet": str(f.severity),
                        },
                        "recommendation": "Rerun the audit when the machine is quiet.",
                    }
                )
                if f.severity >= Severity.WARNING
                else f
                for f in report.findings
            )
        }
    )


def judge(checks: list[Check], snapshots: Mapping[str, Any]) -> Report:
    """Apply every check's rule to its snapshots (components or measurements)."""
    from silenttax._registry import load

    out = Report()
    for check in checks:
        rule = RULES.get(check.rule)
        if rule is None and ":" in check.rule:
            rule = _user_rule(check.rule)
        if rule is None:
            raise StateError(f"audit manifest: unknown rule {check.rule!r}")
        try:
            by_role = {role: snapshots[name] for role, name in check.snapshots.items()}
        except KeyError as exc:
            raise StateError(f"audit manifest: snapshot {exc.args[0]!r} is missing") from exc
        loaded = {k: load(v) if isinstance(v, State) else v for k, v in by_role.items()}
        report = rule(loaded)
        if not isinstance(report, Report):
            raise StateError(f"audit manifest: rule {check.rule!r} gave no Report")
        if "machine" in loaded:
            report = machine_busy(report, loaded["machine"])
        if check.subject is not None:
            report = report.model_copy(
                update={
                    "findings": tuple(
                        f.model_copy(update={"subject": check.subject}) for f in report.findings
                    )
                }
            )
        out = out | report
    return out


def _user_rule(spec: str) -> Callable[[Mapping[str, Any]], Any]:
    """A user's check (``"pkg.module:function"``) as a rule: whatever it raises, or a
    module that no longer imports, is a ``stability.check_failed`` finding."""
    from silenttax._component import load_check
    from silenttax._stability import check_failed_finding

    def rule(snapshots: Mapping[str, Any]) -> Report:
        try:
            got = load_check(spec)(snapshots)
            if not isinstance(got, Report):
                raise InputError(f"returned a {type(got).__name__}, not a Report")
        except Exception as exc:
            return Report(findings=[check_failed_finding(spec, exc)])
        return got

    return rule


def user_checks(checks: Sequence[Any], names: Iterable[str]) -> list[Check]:
    """Manifest entries judging the snapshots ``names`` with users' checks (callables or
    ``"pkg.module:function"`` specs; a callable must be importable by name)."""
    from silenttax._component import _spec_of, load_check

    out = []
    for item in checks:
        spec = item if isinstance(item, str) else _spec_of(item)
        load_check(spec)  # fails now, naming it, rather than in the judgement
        out.append(Check(rule=spec, snapshots={name: name for name in sorted(names)}))
    return out


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """The manifest of a saved audit directory (:class:`StateError` when unreadable)."""
    path = Path(directory) / MANIFEST
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise StateError(f"{path}: cannot read the audit manifest: {exc}") from exc
    except ValueError as exc:
        raise StateError(f"{path}: not an audit manifest: {exc}") from exc
    if manifest.kind != MANIFEST_KIND:
        raise StateError(f"{path}: kind {manifest.kind!r} is not {MANIFEST_KIND!r}")
    if manifest.schema_version > 1:
        raise StateError(
            f"{path}: audit manifest schema version {manifest.schema_version} is newer than "
            "this silenttax reads (1)"
        )
    return manifest


def judge_directory(directory: str | os.PathLike[str], *, checks: Sequence[Any] = ()) -> Report:
    """Re-judge a saved audit from its snapshots (the model is not run again).

    Args:
        directory: The audit's ``--out`` directory.
        checks: Checks of your own besides those the audit recorded: functions
            ``(snapshots by name) -> Report`` or ``"pkg.module:function"``.

    Raises:
        StateError: no readable manifest, or a snapshot file missing or unreadable
            (the file is named).
    """
    import silenttax

    manifest = read_manifest(directory)
    root = Path(directory) / "snapshots"
    if checks:
        stems = sorted(p.stem for p in root.glob("*.json") if p.stem != "audit_notes")
        manifest = manifest.model_copy(
            update={"checks": [*manifest.checks, *user_checks(checks, stems)]}
        )
    names = {name for check in manifest.checks for name in check.snapshots.values()}
    loaded: dict[str, Any] = {}
    for name in sorted(names):
        path = root / f"{name}.json"
        try:
            loaded[name] = silenttax.load(path)
        except StateError as exc:
            raise StateError(f"{path}: {exc}") from exc
    report = judge(manifest.checks, loaded)
    return report.model_copy(
        update={"source": "audit.judge", "context": {**manifest.context, "rejudged": True}}
    )
