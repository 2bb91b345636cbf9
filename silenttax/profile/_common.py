"""What profiles share: the op model, the shares of step time, and the model-bloat report."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from silenttax._state import State
from silenttax._system import quiet_stderr
from silenttax.errors import InputError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_duration as _dur

__all__ = ["OpStat", "Profile", "quiet_stderr"]

OpCategory = Literal["compute", "data_movement", "elementwise", "other"]


class OpStat(BaseModel):
    """One op (type) in a profile, its time attributed as described by the profiler."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """Op name (``aten::addmm``, ``MatMul``) or node name."""
    category: OpCategory
    """``compute``, ``data_movement``, ``elementwise`` or ``other``."""
    count: int
    """Calls over the profiled steps."""
    per_step: float
    """Calls per step."""
    self_time: float
    """Seconds attributed to it over the profiled steps."""
    share: float
    """``self_time`` over the profiled wall time."""
    shapes: list[str] = Field(default_factory=list)
    """Most common input shapes, when recorded."""


class Profile(State):
    """Where a model's step time goes: op categories, framework overhead, worst ops."""

    KIND: ClassVar[str] = "silenttax.profile"

    framework: str
    """``torch`` or ``onnxruntime``."""
    model: str
    """What was profiled."""
    steps: int
    """Profiled steps (after warm-up)."""
    wall_time: float
    """Profiled wall time of the steps, seconds (profiler overhead included)."""
    step_time: float
    """Mean step time while profiled, seconds."""
    compute_share: float
    """Share of step time in compute ops (matmul, conv, attention, norms...)."""
    data_movement_share: float
    """Share in data movement (casts, copies, contiguous, cat/stack, indexing, transfers)."""
    elementwise_share: float
    """Share in elementwise and reduction ops."""
    other_share: float
    """Share in other ops (views, unknown)."""
    overhead_share: float
    """Share of step time not covered by any op (Python, module dispatch, framework)."""
    ops: list[OpStat]
    """Ops by time, largest first."""
    per_item_ops: float = 0.0
    """Per-item indexing ops per step (select/index/item...); a Python loop over a batch."""
    chrome_trace: str | None = None
    """Path of the exported Chrome trace, if requested."""
    notes: list[str] = Field(default_factory=list)
    """Caveats."""

    def top(self, category: OpCategory | None = None, n: int = 3) -> list[OpStat]:
        """The ``n`` most expensive ops, optionally of one category."""
        chosen = [op for op in self.ops if category is None or op.category == category]
        return chosen[:n]

    def report(
        self,
        *,
        max_data_movement: float = 0.10,
        critical_data_movement: float = 0.30,
        max_overhead: float = 0.50,
        max_per_item_ops: float = 8.0,
        min_time: float = 20e-6,
        min_overhead_time: float = 50e-6,
    ) -> Report:
        """``model_bloat.*`` findings: data movement, framework overhead, Python loops.

        A share is material only when it also costs enough per step: one ``Cast`` of
        the input at 12% of a 15 µs tree-ensemble step is 2 µs, not a problem to fix
        (INFO with its figures; WARNING from ``min_time`` on); time outside any op
        includes the runtime's fixed cost per call (10-40 µs for ONNX Runtime's
        ``run`` or a small torch module), so it is a WARNING from
        ``min_overhead_time`` on.

        Args:
            max_data_movement: Largest acceptable share of step time spent moving or
                converting data (WARNING from there).
            critical_data_movement: Share of step time moving data that is CRITICAL.
            max_overhead: Largest acceptable share of framework overhead.
            max_per_item_ops: Largest acceptable number of per-item indexing ops per step.
            min_time: Seconds per step below which a data-movement share is
                immaterial (20 µs).
            min_overhead_time: Seconds per step below which framework overhead is
                immaterial (50 µs).

        Raises:
            InputError: ``max_data_movement > critical_data_movement``.
        """
        if not (min_time >= 0 and min_overhead_time >= 0):
            raise InputError(
                f"min_time and min_overhead_time must be >= 0 seconds, got {min_time!r}, "
                f"{min_overhead_time!r}"
            )
        if not 0 <= max_data_movement <= critical_data_movement:
            raise InputError(
                "need 0 <= max_data_movement <= critical_data_movement, got "
                f"{max_data_movement!r}, {critical_data_movement!r}"
            )
        subject = self.model
        findings: list[Finding] = [
            make_finding(
                "model_bloat.profile",
                severity=Severity.OK,
                subject=subject,
                message=(
                    f"{self.framework} step {_dur(self.step_time)} (profiled): compute "
                    f"{self.compute_share:.0%}, data movement {self.data_movement_share:.0%}, "
                    f"elementwise {self.elementwise_share:.0%}, other {self.other_share:.0%}, "
                    f"framework overhead {self.overhead_share:.0%}"
                ),
                metric="compute_share",
                value=self.compute_share,
                evidence={
                    "shares": {
                        "compute": self.compute_share,
                        "data movement": self.data_movement_share,
                        "elementwise": self.elementwise_share,
                        "other": self.other_share,
                        "framework overhead": self.overhead_share,
                    },
                    "step_time": self.step_time,
                    "top_ops": [op.model_dump() for op in self.top(n=5)],
                    "steps": self.steps,
                    "notes": list(self.notes),
                },
                detector=f"profile.{type(self).__name__}",
            )
        ]
        worst = ", ".join(
            f"{op.name} {op.share:.0%} ({op.per_step:g}/step)" for op in self.top("data_movement")
        )
        moving = self.data_movement_share * self.step_time
        if self.data_movement_share >= max_data_movement:
            material = moving >= min_time
            findings.append(
                self._finding(
                    "model_bloat.data_movement",
                    Severity.INFO
                    if not material
                    else Severity.CRITICAL
                    if self.data_movement_share >= critical_data_movement
                    else Severity.WARNING,
                    f"{self.data_movement_share:.0%} of step time ({_dur(moving)}) moves or "
                    f"converts data instead of computing: {worst}"
                    + ("" if material else f" (immaterial: under {_dur(min_time)} per step)"),
                    "data_movement_share",
                    self.data_movement_share,
                    max_data_movement,
                    "Drop dtype round trips (.to/.float/.double), .clone() and .contiguous() "
                    "on the hot path; keep tensors on one device; build batches once instead "
                    "of cat/stack per step.",
                )
            )
        if self.per_item_ops >= max_per_item_ops:
            findings.append(
                self._finding(
                    "model_bloat.python_loop",
                    Severity.WARNING,
                    f"{self.per_item_ops:g} per-item indexing ops per step (select/index/item): "
                    "a Python loop over batch items",
                    "per_item_ops",
                    self.per_item_ops,
                    max_per_item_ops,
                    "Vectorise: operate on the whole batch tensor instead of looping over its "
                    "items in Python.",
                )
            )
        if self.overhead_share >= max_overhead:
            overhead = self.overhead_share * self.step_time
            findings.append(
                self._finding(
                    "model_bloat.framework_overhead",
                    Severity.WARNING if overhead >= min_overhead_time else Severity.INFO,
                    f"{self.overhead_share:.0%} of step time ({_dur(overhead)}) is outside any "
                    "op (Python, module dispatch, framework glue)"
                    + (
                        ""
                        if overhead >= min_overhead_time
                        else f" (immaterial: under {_dur(min_overhead_time)})"
                    ),
                    "overhead_share",
                    self.overhead_share,
                    max_overhead,
                    "Batch requests, remove Python work from forward(), or compile "
                    "(torch.compile / export to ONNX Runtime).",
                )
            )
        compute = self.top("compute", n=1)
        if compute and self.compute_share >= 0.5 and _is_matmul(compute[0].name):
            findings.append(
                self._finding(
                    "model_bloat.quantizable",
                    Severity.INFO,
                    f"{self.compute_share:.0%} of step time is dense compute led by "
                    f"{compute[0].name}: an int8 candidate",
                    "compute_share",
                    self.compute_share,
                    0.5,
                    "Measure int8 candidates with silenttax.quantize.study(model, inputs).",
                )
            )
        return Report(findings=findings, source=f"profile.{type(self).__name__}.report")

    def _finding(
        self,
        code: str,
        severity: Severity,
        message: str,
        metric: str,
        value: float,
        threshold: float,
        recommendation: str,
    ) -> Finding:
        return make_finding(
            code,
            severity=severity,
            subject=self.model,
            message=message,
            metric=metric,
            value=value,
            threshold=threshold,
            evidence={"top_ops": [op.model_dump() for op in self.top(n=5)]},
            recommendation=recommendation,
            detector=f"profile.{type(self).__name__}",
        )


def _is_matmul(name: str) -> bool:
    lowered = name.lower()
    return any(k in lowered for k in ("mm", "matmul", "linear", "gemm"))
