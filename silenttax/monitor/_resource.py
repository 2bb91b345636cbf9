"""ResourceMonitor: memory, CPU and GPU of a serving process, and the trends that matter."""

from __future__ import annotations

import math
import threading
import time
from typing import Any, ClassVar, Literal, Self

import numpy as np
import psutil
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from silenttax._stability import count_or_none, internal_error_finding, invalid_input_finding
from silenttax._state import State, Stateful, settings, with_policy
from silenttax._system import usable_cores
from silenttax.errors import InputError
from silenttax.monitor._gpu import GpuStats, gpu_snapshot
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_bytes as _bytes
from silenttax.report._render import format_duration as _dur

__all__ = ["ResourceMonitor", "ResourceMonitorState", "ResourceSample", "check_resource"]

_MIB = 1024 * 1024
_USS_BUDGET_S = 0.002  # "cheap enough": one USS read under 2 ms
_MIN_CPU_WINDOW_S = 0.5


class ResourceSample(BaseModel):
    """One reading of the process (and GPUs)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    t: float
    """Seconds since the monitor started (monotonic clock)."""
    rss: int
    """Resident set size, bytes."""
    uss: int | None = None
    """Unique set size (memory freed if the process exited), bytes; None when not read."""
    cpu_time: float
    """User + system CPU seconds used by the process so far."""
    cpu_utilization: float | None = None
    """CPU used since the previous sample, as a fraction of the available cores."""
    threads: int
    """Threads in the process."""
    inferences: int | None = None
    """Cumulative inference count, when the caller told it."""
    gpus: list[GpuStats] = Field(default_factory=list)
    """GPU statistics, when GPUs are monitored."""


class ResourceMonitorState(State):
    """JSON state of a :class:`ResourceMonitor`."""

    KIND: ClassVar[str] = "silenttax.resource_monitor"

    name: str
    """Subject of the findings."""
    samples: list[ResourceSample]
    """Retained samples, oldest first."""
    stride: int = 1
    """Retained samples are every ``stride``-th of those taken."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Constructor settings (``pid`` excepted: a process is not portable); older files: none."""
    errors: NonNegativeInt = 0
    """Samples that failed."""
    invalid: NonNegativeInt = 0
    """``sample`` calls with an ``inferences`` that is not a count (taken without it)."""


class ResourceMonitor(Stateful[ResourceMonitorState]):
    """Sample memory, CPU and GPU use of a process and report leaks and saturation.

    Call :meth:`sample` yourself (e.g. every N requests, passing the
    cumulative inference count) or :meth:`start` a background thread that
    samples every ``interval`` seconds. Memory stays bounded: when
    ``max_samples`` are held, every other one is dropped and sampling
    continues at half the resolution, so the whole history stays covered
    (what a slow leak needs).

    :meth:`check` reports ``resource.memory`` (RSS/USS, bytes per
    inference), ``resource.memory_growth`` (a leak: a significant upward
    trend, Kendall's tau, whose growth between the first and last quarters of the
    window is material),
    ``resource.cpu`` (utilisation, saturation, CPU time per inference) and
    ``resource.gpu`` per GPU. A steady process stays quiet.

    Args:
        interval: Seconds between background samples (used by :meth:`start`).
        name: The model or endpoint watched: the subject of the findings and
            ``context["name"]`` of the report, as in every monitor.
        pid: Process to watch (default: this one).
        max_samples: Samples held before thinning.
        gpu: Include GPU stats: ``"auto"`` (when NVML sees a GPU), True or False.
        uss: Read USS: ``"auto"`` keeps it when one read costs < 2 ms.
        alpha: Significance level of the memory-trend test.
        min_effect: Smallest material memory growth over the window, as a fraction
            of the first RSS (0.10 = 10%; the finding's ``effect_size``).
        min_bytes: ... and never less than this many bytes (the larger wins).
        critical_hours_left: Growth that would exhaust the available memory within
            this many hours is CRITICAL.
        saturation: Utilisation (fraction of available cores) that is saturation.
        strict: Let sampling errors raise instead of being counted.

    Examples:
        >>> monitor = ResourceMonitor(name="ranker", gpu=False)
        >>> for served in range(0, 1000, 100):
        ...     _ = monitor.sample(inferences=served)
        >>> len(monitor.samples), monitor.samples[-1].rss > 0
        (10, True)
        >>> monitor.check().filter(code="resource.memory_growth")[0].severity
        <Severity.OK: 'ok'>
    """

    STATE: ClassVar[type[State]] = ResourceMonitorState
    RENAMED: ClassVar[dict[str, str]] = {
        "min_growth_fraction": "min_effect",
        "min_growth": "min_bytes",
        "cpu_saturation": "saturation",
    }

    def __init__(
        self,
        *,
        interval: float = 1.0,
        name: str = "model",
        pid: int | None = None,
        max_samples: int = 2048,
        gpu: bool | Literal["auto"] = "auto",
        uss: bool | Literal["auto"] = "auto",
        alpha: float = 0.01,
        min_effect: float = 0.10,
        min_bytes: int = 32 * _MIB,
        critical_hours_left: float = 1.0,
        saturation: float = 0.90,
        strict: bool = False,
    ) -> None:
        if not interval > 0:
            raise InputError(f"interval must be > 0 seconds, got {interval!r}")
        if max_samples < 16:
            raise InputError(f"max_samples must be >= 16, got {max_samples!r}")
        if not 0 < alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
        self.interval = float(interval)
        if not isinstance(name, str):
            raise InputError(f"name must be a string, got {type(name).__name__}")
        self.name = name
        self.max_samples = max_samples
        self.alpha = alpha
        if min_effect < 0 or min_bytes < 0 or critical_hours_left < 0:
            raise InputError("need min_effect, min_bytes and critical_hours_left >= 0")
        if not 0 < saturation <= 1:
            raise InputError(f"saturation must be in (0, 1], got {saturation!r}")
        self.min_effect = float(min_effect)
        self.min_bytes = int(min_bytes)
        self.critical_hours_left = float(critical_hours_left)
        self.saturation = float(saturation)
        self.strict = strict
        self._gpu: bool | Literal["auto"] = gpu
        self._uss: bool | Literal["auto"] = uss
        try:
            self._process = psutil.Process(pid)
        except psutil.Error as exc:
            raise InputError(f"pid: cannot watch process {pid}: {exc}") from exc
        self._cores = usable_cores()
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._samples: list[ResourceSample] = []
        self._stride = 1
        self._taken = 0
        self._last: ResourceSample | None = None
        self.errors = 0
        self.invalid = 0
        """``sample`` calls whose ``inferences`` was not a count (taken without it)."""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ sampling
    @property
    def samples(self) -> tuple[ResourceSample, ...]:
        """Retained samples, oldest first."""
        with self._lock:
            return tuple(self._samples)

    def sample(self, inferences: int | None = None) -> ResourceSample | None:
        """Take one reading now; ``inferences`` is the cumulative count served so far.

        Returns None (and counts an error) if the process cannot be read,
        unless ``strict=True``. An ``inferences`` that is not a count (an integer
        >= 0) is counted as invalid and the sample is taken without it.
        """
        if inferences is not None and count_or_none(inferences) is None:
            if self.strict:
                raise InputError(f"inferences must be an integer >= 0, got {inferences!r}")
            with self._lock:
                self.invalid += 1
            inferences = None
        try:
            reading = self._read(inferences)
        except Exception:
            if self.strict:
                raise
            self.errors += 1
            return None
        with self._lock:
            self._last = reading
            self._taken += 1
            if (self._taken - 1) % self._stride == 0:
                self._samples.append(reading)
                if len(self._samples) > self.max_samples:
                    self._samples = self._samples[::2]
                    self._stride *= 2
        return reading

    def _read(self, inferences: int | None) -> ResourceSample:
        process = self._process
        with process.oneshot():
            now = time.monotonic() - self._start
            rss = process.memory_info().rss
            times = process.cpu_times()
            threads = process.num_threads()
            uss = None
            if self._uss:
                began = time.perf_counter()
                uss = process.memory_full_info().uss
                if self._uss == "auto":
                    self._uss = time.perf_counter() - began < _USS_BUDGET_S
        cpu_time = times.user + times.system
        last = self._last
        util = None
        if last is not None and now > last.t:
            util = (cpu_time - last.cpu_time) / (now - last.t) / self._cores
        gpus: list[GpuStats] = []
        if self._gpu:
            gpus = gpu_snapshot()
            if self._gpu == "auto":
                self._gpu = bool(gpus)
        return ResourceSample(
            t=now,
            rss=rss,
            uss=uss,
            cpu_time=cpu_time,
            cpu_utilization=util,
            threads=threads,
            inferences=inferences,
            gpus=gpus,
        )

    def start(self) -> Self:
        """Sample every ``interval`` seconds in a daemon thread (until :meth:`stop`)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="silenttax-resource-monitor", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # strict=True must not kill the thread silently either
                self.errors += 1
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop the background thread (takes one last sample)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Drop every sample (the settings stay)."""
        with self._lock:
            self._samples, self._stride, self._taken, self._last = [], 1, 0, None
            self.errors = self.invalid = 0

    # --------------------------------------------------------------------- state
    def state(self) -> ResourceMonitorState:
        """JSON-serializable snapshot: the retained samples and the settings."""
        params = {
            "interval": self.interval,
            "name": self.name,
            "max_samples": self.max_samples,
            "gpu": self._gpu,
            "uss": self._uss,
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "min_bytes": self.min_bytes,
            "critical_hours_left": self.critical_hours_left,
            "saturation": self.saturation,
            "strict": self.strict,
        }
        with self._lock:
            return ResourceMonitorState(
                name=self.name,
                samples=list(self._samples),
                stride=self._stride,
                params=params,
                errors=self.errors,
                invalid=self.invalid,
            )

    @classmethod
    def from_state(cls, state: ResourceMonitorState) -> Self:
        """A monitor of this process holding the saved samples and settings."""
        monitor = cls(**settings(cls, {**state.params, "name": state.name}))
        monitor._samples, monitor._stride = list(state.samples), state.stride
        monitor._taken = len(state.samples) * state.stride
        monitor._last = state.samples[-1] if state.samples else None
        monitor.errors, monitor.invalid = state.errors, state.invalid
        return monitor

    # --------------------------------------------------------------------- check
    def check(self) -> Report:
        """Findings on memory, memory growth, CPU and GPUs (see the class docs).

        The same as :func:`check_resource` on :meth:`state`.
        """
        return check_resource(self)

    def _judge(self) -> Report:
        samples = self.samples
        findings: list[Finding] = []
        if len(samples) < 2:
            findings.append(
                make_finding(
                    "resource.no_data",
                    severity=Severity.INFO,
                    subject=self.name,
                    message=f"{len(samples)} resource sample(s): need at least 2 to judge",
                    metric="samples",
                    value=float(len(samples)),
                    detector="monitor.ResourceMonitor",
                )
            )
        else:
            findings += [self._memory(samples), self._growth(samples), self._cpu(samples)]
        findings += self._gpus(samples)
        if self.invalid:
            findings.append(
                invalid_input_finding(
                    self.name,
                    invalid=self.invalid,
                    recorded=len(samples),
                    what="inference counts passed to sample()",
                    detector="monitor.ResourceMonitor",
                )
            )
        if self.errors:
            findings.append(
                internal_error_finding(
                    self.name,
                    errors=self.errors,
                    what="resource samples",
                    detector="monitor.ResourceMonitor",
                )
            )
        return Report(
            findings=findings,
            source="monitor.check_resource",
            context={
                "name": self.name,
                "samples": len(samples),
                "stride": self._stride,
                "window_s": samples[-1].t - samples[0].t if samples else 0.0,
                "cores": self._cores,
            },
        )

    @staticmethod
    def _per_inference(samples: tuple[ResourceSample, ...], attr: str) -> float | None:
        counted = [s for s in samples if s.inferences is not None]
        if len(counted) < 2:
            return None
        first, last = counted[0], counted[-1]
        served = (last.inferences or 0) - (first.inferences or 0)
        if served <= 0:
            return None
        return float(getattr(last, attr) - getattr(first, attr)) / served

    def _memory(self, samples: tuple[ResourceSample, ...]) -> Finding:
        rss = np.array([s.rss for s in samples], dtype=np.float64)
        last = samples[-1]
        per_inf = self._per_inference(samples, "rss")
        message = f"RSS {_bytes(last.rss)} (min {_bytes(rss.min())}, max {_bytes(rss.max())})"
        if last.uss is not None:
            message += f", USS {_bytes(last.uss)}"
        if per_inf is not None:
            message += f"; {per_inf:+.0f} B of RSS per inference over the window"
        return make_finding(
            "resource.memory",
            severity=Severity.OK,
            subject=self.name,
            message=message,
            metric="rss",
            value=float(last.rss),
            baseline=float(samples[0].rss),
            unit="B",
            evidence={
                "rss_min": float(rss.min()),
                "rss_max": float(rss.max()),
                "uss": last.uss,
                "bytes_per_inference": per_inf,
            },
            detector="monitor.ResourceMonitor",
        )

    def _growth(self, samples: tuple[ResourceSample, ...]) -> Finding:
        from scipy.stats import kendalltau, theilslopes

        t = np.array([s.t for s in samples])
        rss = np.array([s.rss for s in samples], dtype=np.float64)
        duration = float(t[-1] - t[0])
        material = max(float(self.min_bytes), self.min_effect * rss[0])
        common: dict[str, Any] = {
            "subject": self.name,
            "metric": "rss_growth",
            "unit": "B",
            "threshold": material,
            "detector": "monitor.ResourceMonitor",
        }
        if len(samples) < 8 or duration <= 0 or np.ptp(rss) == 0:
            return make_finding(
                "resource.memory_growth",
                severity=Severity.OK,
                message=(
                    f"no memory growth: RSS {_bytes(rss[-1])}"
                    if len(samples) >= 8
                    else f"only {len(samples)} samples: need 8 to test for a memory trend"
                ),
                value=float(rss[-1] - rss[0]),
                **common,
            )
        slope = float(theilslopes(rss, t)[0])  # bytes per second, robust to spikes
        tau = kendalltau(t, rss, alternative="greater")
        p_value = float(tau.pvalue) if math.isfinite(tau.pvalue) else 1.0
        # Growth over the window: robust ends (medians of the first and last quarter),
        # which does not depend on how evenly the samples are spaced in time.
        quarter = max(2, len(samples) // 4)
        growth = float(np.median(rss[-quarter:]) - np.median(rss[:quarter]))
        per_inf = self._per_inference(samples, "rss")
        evidence: dict[str, Any] = {
            "slope_bytes_per_s": slope,
            "window_s": duration,
            "kendall_tau": float(tau.statistic),
            "samples": len(samples),
            "bytes_per_inference": per_inf,
        }
        if p_value < self.alpha and growth >= material:
            available = psutil.virtual_memory().available
            hours_left = available / slope / 3600 if slope > 0 else math.inf
            evidence["hours_to_exhaust_available_memory"] = hours_left
            severity = (
                Severity.CRITICAL if hours_left < self.critical_hours_left else Severity.WARNING
            )
            message = (
                f"memory grows steadily: +{_bytes(growth)} over {_dur(duration)} "
                f"({_bytes(slope * 3600)}/h, Kendall tau {tau.statistic:.2f}, p = {p_value:.2g})"
                + (f", {per_inf:.0f} B per inference" if per_inf else "")
                + f"; available memory lasts ~{hours_left:.1f} h at this rate"
            )
            recommendation = (
                "Look for caches or lists that grow per request (tracemalloc, "
                "memray); check tensors kept alive by autograd or logging."
            )
        else:
            severity, recommendation = Severity.OK, None
            message = (
                f"no material memory growth: {_bytes(growth)} trend over {_dur(duration)} "
                f"(threshold {_bytes(material)}, p = {p_value:.2g})"
            )
        return make_finding(
            "resource.memory_growth",
            severity=severity,
            message=message,
            value=growth,
            baseline=float(rss[0]),
            p_value=p_value,
            effect_size=growth / rss[0],
            evidence=evidence,
            recommendation=recommendation,
            **common,
        )

    def _cpu(self, samples: tuple[ResourceSample, ...]) -> Finding:
        first, last = samples[0], samples[-1]
        elapsed = last.t - first.t
        util = (last.cpu_time - first.cpu_time) / elapsed / self._cores if elapsed > 0 else 0.0
        per_inf = self._per_inference(samples, "cpu_time")
        # CPU time ticks in 10 ms steps: shorter windows cannot tell busy from idle.
        judged = elapsed >= _MIN_CPU_WINDOW_S
        saturated = judged and util >= self.saturation
        threads = last.threads
        message = (
            f"CPU {util:.0%} of {self._cores} available core(s) over {_dur(elapsed)}, "
            f"{threads} threads"
        )
        if not judged:
            message += f" (window under {_MIN_CPU_WINDOW_S:g} s: too short to judge saturation)"
        if per_inf is not None:
            message += f"; {per_inf * 1e3:.3g} ms CPU per inference"
        recommendation = None
        if saturated:
            message = "CPU saturated: " + message
            recommendation = (
                "Add capacity or cut work per request; check thread pools "
                "(torch/OMP/ORT threads beyond the available cores oversubscribe)."
            )
        return make_finding(
            "resource.cpu",
            severity=Severity.WARNING if saturated else Severity.OK,
            subject=self.name,
            message=message,
            metric="cpu_utilization",
            value=util,
            threshold=self.saturation,
            evidence={
                "cores": self._cores,
                "threads": threads,
                "cpu_seconds_per_inference": per_inf,
            },
            recommendation=recommendation,
            detector="monitor.ResourceMonitor",
        )

    def _gpus(self, samples: tuple[ResourceSample, ...]) -> list[Finding]:
        last = next((s for s in reversed(samples) if s.gpus), None)
        if last is None:
            return []
        findings = []
        for g in last.gpus:
            used = (
                g.memory_used / g.memory_total
                if g.memory_used is not None and g.memory_total
                else None
            )
            full = used is not None and used >= 0.95
            parts = [f"GPU {g.index} ({g.name})"]
            if g.utilization is not None:
                parts.append(f"utilisation {g.utilization:.0%}")
            if used is not None:
                parts.append(f"memory {used:.0%} of {_bytes(g.memory_total or 0)}")
            if g.power is not None:
                parts.append(f"{g.power:.0f} W")
            findings.append(
                make_finding(
                    "resource.gpu",
                    severity=Severity.WARNING if full else Severity.OK,
                    subject=f"{self.name}/gpu{g.index}",
                    message=", ".join(parts),
                    metric="gpu_memory_fraction",
                    value=used,
                    threshold=0.95,
                    evidence=g.model_dump(),
                    recommendation="GPU memory nearly full: smaller batches or a quantized model."
                    if full
                    else None,
                    detector="monitor.ResourceMonitor",
                )
            )
        return findings


def check_resource(
    current: ResourceMonitor | ResourceMonitorState,
    *,
    alpha: float | None = None,
    min_effect: float | None = None,
    min_bytes: int | None = None,
    critical_hours_left: float | None = None,
    saturation: float | None = None,
) -> Report:
    """Judge a resource snapshot under a policy (a pure function).

    Resource findings need no baseline: a leak is a trend within the samples,
    saturation a level. The policy defaults to the monitor's settings; a
    keyword given here replaces it. ``ResourceMonitor.check`` is this function
    on the live monitor.

    Args:
        current: The monitor or its state (e.g. loaded from yesterday's file).
        alpha: Significance level of the memory-trend test.
        min_effect: Smallest material memory growth, as a fraction of the first RSS.
        min_bytes: ... and never less than this many bytes.
        critical_hours_left: Growth that exhausts available memory within this
            many hours is CRITICAL.
        saturation: Utilisation of the available cores that counts as saturated.

    Raises:
        InputError: ``current`` is of another type, or a policy value is out of range.

    Examples:
        >>> monitor = ResourceMonitor(gpu=False)
        >>> for served in range(0, 1000, 100):
        ...     _ = monitor.sample(inferences=served)
        >>> report = check_resource(monitor.state(), alpha=0.001)
        >>> report.filter(code="resource.memory_growth")[0].severity.value
        'ok'
    """
    policy = {
        "alpha": alpha,
        "min_effect": min_effect,
        "min_bytes": min_bytes,
        "critical_hours_left": critical_hours_left,
        "saturation": saturation,
    }
    return with_policy(ResourceMonitor, current, policy)._judge()
