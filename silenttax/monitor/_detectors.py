"""Streaming change detectors (latency creep, memory growth, cost drift).

All detectors share one base: they calibrate on a warm-up (mean and standard
deviation of the first ``warmup`` values), then watch the standardised stream
``z = (x - mean) / sd``, clipped to ``[-clip, clip]`` so that a lone outlier
cannot raise an alarm. Thresholds are therefore in standard deviations and
the same defaults work on seconds, milliseconds or bytes. After an alarm the
detector starts a new warm-up on the new regime.

Defaults are calibrated (``benchmarks/bench_detectors.py``) so that on
stationary noise — Gaussian, or log-normal latencies — fewer than 5% of
20,000-sample streams raise any alarm, while a 2-sd step is caught within a
few dozen samples (CUSUM, Page-Hinkley) or a few hundred (ADWIN).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, Self

from pydantic import Field

from silenttax._state import State, Stateful, settings
from silenttax.errors import InputError, StateError

__all__ = ["CUSUM", "ChangeDetector", "DetectorState", "PageHinkley"]

Direction = Literal["up", "down", "both"]


class DetectorState(State):
    """JSON state of a change detector: its settings and running statistics."""

    KIND: ClassVar[str] = "silenttax.change_detector"

    detector: str
    """Class name of the detector (``CUSUM``, ``PageHinkley``, ``ADWIN``)."""
    params: dict[str, Any]
    """Constructor arguments."""
    stats: dict[str, Any] = Field(default_factory=dict)
    """Running statistics (warm-up moments, sums, windows)."""


class ChangeDetector(Stateful[DetectorState], ABC):
    """Base class: warm-up standardisation, clipping, alarm bookkeeping and JSON state.

    Subclasses implement :meth:`_step` (one standardised value, returns
    whether a change is detected) and :meth:`_restart` (clear the test
    statistic).
    """

    STATE: ClassVar[type[State]] = DetectorState

    def __init__(
        self, *, warmup: int = 300, direction: Direction = "both", clip: float = 3.0
    ) -> None:
        if not (isinstance(warmup, int) and warmup >= 2):
            raise InputError(f"warmup must be an int >= 2, got {warmup!r}")
        if direction not in ("up", "down", "both"):
            raise InputError(f"direction must be 'up', 'down' or 'both', got {direction!r}")
        if not clip > 0:
            raise InputError(f"clip must be > 0, got {clip!r}")
        self.warmup = warmup
        self.direction: Direction = direction
        self.clip = float(clip)
        self._n = 0
        self._invalid = 0
        self._detections = 0
        self._last_detection: int | None = None
        self._drift = False
        self._start_warmup()
        self._restart()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _step(self, z: float) -> bool:
        """Feed one standardised value; True when a change is detected."""

    @abstractmethod
    def _restart(self) -> None:
        """Clear the test statistic (after an alarm or on reset)."""

    def _params(self) -> dict[str, Any]:
        return {"warmup": self.warmup, "direction": self.direction, "clip": self.clip}

    def _get_stats(self) -> dict[str, Any]:
        return {}

    def _set_stats(self, stats: dict[str, Any]) -> None:
        del stats

    # ------------------------------------------------------------------- API
    def update(self, x: float) -> Self:
        """Feed one value; returns the detector (read :attr:`drift_detected`), as river's
        detectors do: ``if detector.update(x).drift_detected: ...``.

        Non-finite or non-numeric values are counted in :attr:`invalid` and
        ignored (they never raise).
        """
        self._drift = False
        try:
            value = float(x)
        except (TypeError, ValueError):
            self._invalid += 1
            return self
        if not math.isfinite(value):
            self._invalid += 1
            return self
        self._n += 1
        if self._w_n < self.warmup:
            self._w_n += 1
            delta = value - self._w_mean
            self._w_mean += delta / self._w_n
            self._w_m2 += delta * (value - self._w_mean)
            return self
        sd = math.sqrt(self._w_m2 / (self._w_n - 1))
        sd = max(sd, 1e-9 * abs(self._w_mean), 1e-300)
        z = min(self.clip, max(-self.clip, (value - self._w_mean) / sd))
        if self._step(z):
            self._drift = True
            self._detections += 1
            self._last_detection = self._n
            self._start_warmup()
            self._restart()
        return self

    @property
    def drift_detected(self) -> bool:
        """Whether the last :meth:`update` detected a change."""
        return self._drift

    @property
    def n(self) -> int:
        """Valid values seen."""
        return self._n

    @property
    def invalid(self) -> int:
        """Ignored values (NaN, infinite, not a number)."""
        return self._invalid

    @property
    def n_detections(self) -> int:
        """Alarms raised so far."""
        return self._detections

    @property
    def last_detection(self) -> int | None:
        """1-based index (in valid values) of the last alarm, or None."""
        return self._last_detection

    @property
    def warming_up(self) -> bool:
        """True while the detector is (re)calibrating and cannot alarm."""
        return self._w_n < self.warmup

    @property
    def reference(self) -> tuple[float, float] | None:
        """(mean, sd) learnt in the warm-up, or None while warming up."""
        if self.warming_up:
            return None
        return self._w_mean, math.sqrt(self._w_m2 / (self._w_n - 1))

    def reset(self) -> None:
        """Back to the freshly constructed state."""
        self._n = self._invalid = self._detections = 0
        self._last_detection = None
        self._drift = False
        self._start_warmup()
        self._restart()

    def _start_warmup(self) -> None:
        self._w_n = 0
        self._w_mean = 0.0
        self._w_m2 = 0.0

    # ------------------------------------------------------------------ state
    def state(self) -> DetectorState:
        """JSON-serializable snapshot."""
        stats = {
            "n": self._n,
            "invalid": self._invalid,
            "detections": self._detections,
            "last_detection": self._last_detection,
            "drift": self._drift,
            "w_n": self._w_n,
            "w_mean": self._w_mean,
            "w_m2": self._w_m2,
            **self._get_stats(),
        }
        return DetectorState(detector=type(self).__name__, params=self._params(), stats=stats)

    @classmethod
    def from_state(cls, state: DetectorState) -> Self:
        """Rebuild a detector from :meth:`state`.

        Raises:
            StateError: the state is of another detector class.
        """
        if cls is ChangeDetector:  # silenttax.load / ChangeDetector.load: the saved class
            known = {c.__name__: c for c in _subclasses(ChangeDetector)}
            if state.detector not in known:
                raise StateError(f"unknown change detector {state.detector!r}")
            detector: Self = known[state.detector].from_state(state)
            return detector
        if state.detector != cls.__name__:
            raise StateError(f"state is of a {state.detector} detector, not {cls.__name__}")
        detector = cls(**settings(cls, state.params))
        s = dict(state.stats)
        detector._n, detector._invalid = s.pop("n"), s.pop("invalid")
        detector._detections, detector._last_detection = (
            s.pop("detections"),
            s.pop("last_detection"),
        )
        detector._drift = s.pop("drift")
        detector._w_n, detector._w_mean, detector._w_m2 = (
            s.pop("w_n"),
            s.pop("w_mean"),
            s.pop("w_m2"),
        )
        detector._set_stats(s)
        return detector

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params}; n={self._n}, detections={self._detections})"


class CUSUM(ChangeDetector):
    """Two-sided (or one-sided) CUSUM on the standardised stream.

    ``S+ = max(0, S+ + z - k)`` and ``S- = max(0, S- - z - k)``; an alarm when
    either exceeds ``h``. ``k`` (in sd) is half the shift the detector is
    tuned for; the default ``k = 1`` is optimal for 2-sd steps.

    Args:
        k: Allowance in standard deviations.
        h: Decision boundary in standard deviations.
        warmup: Values used to learn the mean and sd.
        direction: ``"up"`` (latency creep, memory growth), ``"down"`` or ``"both"``.
        clip: Standardised values are clipped to ``[-clip, clip]``.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(7)
        >>> stream = np.concatenate([rng.normal(20, 2, 1000), rng.normal(24, 2, 500)])
        >>> detector = CUSUM(direction="up")
        >>> alarms = [i for i, x in enumerate(stream) if detector.update(x).drift_detected]
        >>> alarms
        [1010]
    """

    RENAMED: ClassVar[dict[str, str]] = {"threshold": "h"}

    def __init__(
        self,
        *,
        k: float = 1.0,
        h: float = 16.0,
        warmup: int = 300,
        direction: Direction = "both",
        clip: float = 3.0,
    ) -> None:
        if not k >= 0 or not h > 0:
            raise InputError(f"need k >= 0 and h > 0, got k={k!r}, h={h!r}")
        self.k = float(k)
        self.h = float(h)
        super().__init__(warmup=warmup, direction=direction, clip=clip)

    def _params(self) -> dict[str, Any]:
        return {"k": self.k, "h": self.h, **super()._params()}

    def _restart(self) -> None:
        self._pos = 0.0
        self._neg = 0.0

    def _step(self, z: float) -> bool:
        self._pos = max(0.0, self._pos + z - self.k)
        self._neg = max(0.0, self._neg - z - self.k)
        up = self.direction != "down" and self._pos > self.h
        down = self.direction != "up" and self._neg > self.h
        return up or down

    def _get_stats(self) -> dict[str, Any]:
        return {"pos": self._pos, "neg": self._neg}

    def _set_stats(self, stats: dict[str, Any]) -> None:
        self._pos, self._neg = stats["pos"], stats["neg"]


class PageHinkley(ChangeDetector):
    """Page-Hinkley test on the standardised stream.

    ``m_t = forgetting * m_{t-1} + (z_t - mean_t - k)`` with ``mean_t`` the
    running mean since the warm-up; an alarm when ``m_t - min(m) > h`` (and
    the mirror image for downward changes). ``k`` and ``h`` mean what they
    mean in :class:`CUSUM` (the literature's ``delta`` and ``lambda``).

    Args:
        k: Tolerated drift per value, in standard deviations.
        h: Decision boundary in standard deviations.
        forgetting: Forgetting factor of the cumulative sum (1 = none).
        warmup: Values used to learn the mean and sd.
        direction: ``"up"``, ``"down"`` or ``"both"``.
        clip: Standardised values are clipped to ``[-clip, clip]``.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(7)
        >>> stream = np.concatenate([rng.normal(5e-3, 1e-3, 1000), rng.normal(7e-3, 1e-3, 500)])
        >>> detector = PageHinkley()
        >>> [i for i, x in enumerate(stream) if detector.update(x).drift_detected]
        [1014]
    """

    RENAMED: ClassVar[dict[str, str]] = {"delta": "k", "threshold": "h", "alpha": "forgetting"}

    def __init__(
        self,
        *,
        k: float = 0.5,
        h: float = 25.0,
        forgetting: float = 1.0,
        warmup: int = 300,
        direction: Direction = "both",
        clip: float = 3.0,
    ) -> None:
        if not k >= 0 or not h > 0 or not 0 < forgetting <= 1:
            raise InputError(
                f"need k >= 0, h > 0 and 0 < forgetting <= 1, got k={k!r}, h={h!r}, "
                f"forgetting={forgetting!r}"
            )
        self.k = float(k)
        self.h = float(h)
        self.forgetting = float(forgetting)
        super().__init__(warmup=warmup, direction=direction, clip=clip)

    def _params(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "h": self.h,
            "forgetting": self.forgetting,
            **super()._params(),
        }

    def _restart(self) -> None:
        self._count = 0
        self._mean = 0.0
        self._up = self._up_min = 0.0
        self._down = self._down_min = 0.0

    def _step(self, z: float) -> bool:
        self._count += 1
        self._mean += (z - self._mean) / self._count
        self._up = self.forgetting * self._up + (z - self._mean - self.k)
        self._down = self.forgetting * self._down + (self._mean - z - self.k)
        self._up_min = min(self._up_min, self._up)
        self._down_min = min(self._down_min, self._down)
        up = self.direction != "down" and self._up - self._up_min > self.h
        down = self.direction != "up" and self._down - self._down_min > self.h
        return up or down

    def _get_stats(self) -> dict[str, Any]:
        return {
            "count": self._count,
            "mean": self._mean,
            "up": self._up,
            "up_min": self._up_min,
            "down": self._down,
            "down_min": self._down_min,
        }

    def _set_stats(self, stats: dict[str, Any]) -> None:
        self._count, self._mean = stats["count"], stats["mean"]
        self._up, self._up_min = stats["up"], stats["up_min"]
        self._down, self._down_min = stats["down"], stats["down_min"]


def _subclasses(cls: type[Any]) -> list[type[Any]]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out
