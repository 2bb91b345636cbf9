"""ADWIN: adaptive windowing change detector (Bifet & Gavaldà, 2007)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from silenttax.errors import InputError
from silenttax.monitor._detectors import ChangeDetector, Direction

__all__ = ["ADWIN"]


class ADWIN(ChangeDetector):
    """ADWIN on the standardised stream: keeps the longest recent window whose
    halves agree, and alarms when two sub-windows' means differ significantly.

    The window is stored as an exponential histogram (at most ``buckets_per_size``
    buckets per size class), so memory is O(log n). Every ``clock`` values it
    tests each split point with MOA's bound
    ``eps = sqrt(2 m v ln(2 ln(W) / alpha)) + 2/3 m ln(2 ln(W) / alpha)``,
    ``m = 1/(n0 - L + 1) + 1/(n1 - L + 1)``, ``v`` the window variance and
    ``L`` the minimum sub-window length. ``direction`` limits alarms to
    increases or decreases of the mean. ``alpha`` is the paper's ``delta``: a
    bound on the false-alarm probability, so it carries the library's name for
    a significance level.

    Args:
        alpha: Significance level (smaller: fewer false alarms, slower).
        clock: Test for a cut every ``clock`` values.
        buckets_per_size: Buckets kept per size class (the paper's M).
        min_window: Minimum length of each sub-window.
        warmup: Values used to learn the mean and sd.
        direction: ``"up"``, ``"down"`` or ``"both"``.
        clip: Standardised values are clipped to ``[-clip, clip]``.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(7)
        >>> stream = np.concatenate([rng.normal(100, 10, 1000), rng.normal(120, 10, 500)])
        >>> detector = ADWIN()
        >>> [i for i, x in enumerate(stream) if detector.update(x).drift_detected]
        [1035]
    """

    RENAMED: ClassVar[dict[str, str]] = {"delta": "alpha", "max_buckets": "buckets_per_size"}

    def __init__(
        self,
        *,
        alpha: float = 0.002,
        clock: int = 32,
        buckets_per_size: int = 5,
        min_window: int = 16,
        warmup: int = 300,
        direction: Direction = "both",
        clip: float = 3.0,
    ) -> None:
        if not 0 < alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
        if clock < 1 or buckets_per_size < 2 or min_window < 1:
            raise InputError("need clock >= 1, buckets_per_size >= 2 and min_window >= 1")
        self.alpha = float(alpha)
        self.clock = int(clock)
        self.buckets_per_size = int(buckets_per_size)
        self.min_window = int(min_window)
        super().__init__(warmup=warmup, direction=direction, clip=clip)

    def _params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "clock": self.clock,
            "buckets_per_size": self.buckets_per_size,
            "min_window": self.min_window,
            **super()._params(),
        }

    def _restart(self) -> None:
        # rows[i] holds buckets of 2**i values, newest last: [total, variance] pairs,
        # where variance is the sum of squared deviations from the bucket mean.
        self._rows: list[list[list[float]]] = []
        self._width = 0
        self._total = 0.0
        self._variance = 0.0
        self._ticks = 0

    @property
    def width(self) -> int:
        """Current window length."""
        return self._width

    def _step(self, z: float) -> bool:
        if self._width:
            mean = self._total / self._width
            self._variance += self._width * (z - mean) ** 2 / (self._width + 1)
        self._width += 1
        self._total += z
        if not self._rows:
            self._rows.append([])
        self._rows[0].append([z, 0.0])
        self._compress()
        self._ticks += 1
        if self._ticks % self.clock or self._width < 2 * self.min_window:
            return False
        return self._cut()

    def _compress(self) -> None:
        i = 0
        while i < len(self._rows) and len(self._rows[i]) > self.buckets_per_size:
            size = 1 << i
            (t1, v1), (t2, v2) = self._rows[i][0], self._rows[i][1]
            del self._rows[i][:2]
            u1, u2 = t1 / size, t2 / size
            merged = [t1 + t2, v1 + v2 + size * size * (u1 - u2) ** 2 / (2 * size)]
            if i + 1 == len(self._rows):
                self._rows.append([])
            self._rows[i + 1].append(merged)
            i += 1

    def _cut(self) -> bool:
        detected = False
        while True:
            split = self._find_cut()
            if split is None:
                return detected
            detected = detected or split
            self._drop_oldest()

    def _find_cut(self) -> bool | None:
        """None if no cut; else whether the cut is in the watched direction."""
        width, total = self._width, self._total
        variance = self._variance / width
        log_term = math.log(2.0 * math.log(width) / self.alpha)
        n0, t0 = 0, 0.0
        for i in range(len(self._rows) - 1, -1, -1):  # oldest (largest) buckets first
            size = 1 << i
            for bucket_total, _ in self._rows[i]:
                n0 += size
                t0 += bucket_total
                n1 = width - n0
                if n1 < self.min_window:
                    return None
                if n0 < self.min_window:
                    continue
                u0, u1 = t0 / n0, (total - t0) / n1
                m = 1.0 / (n0 - self.min_window + 1) + 1.0 / (n1 - self.min_window + 1)
                eps = math.sqrt(2.0 * m * variance * log_term) + 2.0 / 3.0 * log_term * m
                if abs(u1 - u0) > eps:
                    if self.direction == "up":
                        return u1 > u0
                    if self.direction == "down":
                        return u1 < u0
                    return True
        return None

    def _drop_oldest(self) -> None:
        i = len(self._rows) - 1
        size = 1 << i
        bucket_total, bucket_var = self._rows[i].pop(0)
        if not self._rows[i]:
            self._rows.pop()
        rest = self._width - size
        if rest:
            u_bucket = bucket_total / size
            u_rest = (self._total - bucket_total) / rest
            self._variance -= bucket_var + size * rest * (u_bucket - u_rest) ** 2 / self._width
            self._variance = max(self._variance, 0.0)
        else:
            self._variance = 0.0
        self._width = rest
        self._total -= bucket_total

    def _get_stats(self) -> dict[str, Any]:
        return {
            "rows": self._rows,
            "width": self._width,
            "total": self._total,
            "variance": self._variance,
            "ticks": self._ticks,
        }

    def _set_stats(self, stats: dict[str, Any]) -> None:
        self._rows = [[list(b) for b in row] for row in stats["rows"]]
        self._width, self._total = stats["width"], stats["total"]
        self._variance, self._ticks = stats["variance"], stats["ticks"]
