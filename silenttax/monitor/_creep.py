"""Latency creep: a change detector over what a LatencyMonitor records.

Requests are cut into blocks of ``block`` consecutive latencies; each block's
median and 95th percentile (in log seconds, so a slowdown is a shift) feed a
one-sided CUSUM each (:class:`~silenttax.monitor.CUSUM`, ``direction="up"``),
standardised on the first ``warmup`` blocks (200 blocks, 12,800 requests:
a shorter warm-up estimates the level too roughly and cries wolf). Block
quantiles are close to normal, so per-request noise does not reach the
CUSUM. Seeded simulations (log-normal, sigma 0.25-1): 1 run in 150 of 100k
requests raises a false alarm; a +25% p50 is confirmed a few hundred
requests after it starts. The watch listens to the latency sketch's own
fold (:meth:`CreepWatch.consume`), so recording pays nothing extra.

A detection becomes a :class:`CreepEvent`: the request where the climb
started (the CUSUM's last zero before the alarm, the textbook change-point
estimate), the request where it was confirmed, and by how much the quantile
rose: the geometric mean of the block quantiles from the start to the alarm
over that of the warm-up.
"""

from __future__ import annotations

import math
from array import array

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from silenttax.monitor._detectors import CUSUM, DetectorState

__all__ = ["CreepEvent", "CreepState", "CreepWatch"]

_QUANTILES = {"p50": 0.5, "p95": 0.95}


def _quantile(rows: np.ndarray, q: float) -> np.ndarray:
    """Per-row q-quantile of row-sorted data (linear interpolation, as np.quantile)."""
    at = q * (rows.shape[1] - 1)
    lo = int(at)
    hi = min(lo + 1, rows.shape[1] - 1)
    frac = at - lo
    result: np.ndarray = rows[:, lo] * (1 - frac) + rows[:, hi] * frac
    return result


class CreepEvent(BaseModel):
    """One detected latency creep."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quantile: str
    """``p50`` or ``p95`` (of blocks of requests)."""
    started: int
    """Request (1-based, in valid recordings) where the climb started."""
    detected: int
    """Request where it was confirmed."""
    before: float
    """Block quantile before the change (geometric mean over the warm-up), seconds."""
    after: float
    """Block quantile from the start to the alarm (geometric mean), seconds."""

    @property
    def ratio(self) -> float:
        """after / before."""
        return self.after / self.before if self.before > 0 else math.inf


class CreepState(BaseModel):
    """JSON state of a :class:`CreepWatch`."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    block: int
    warmup: int
    h: float
    seen: int = 0
    """Valid latencies folded into blocks so far."""
    pending: list[float] = Field(default_factory=list)
    """Latencies not yet folded."""
    detectors: dict[str, DetectorState] = Field(default_factory=dict)
    reference: dict[str, float] = Field(default_factory=dict)
    """Sum of log block quantiles during each detector's current warm-up."""
    since_zero: dict[str, list[float]] = Field(default_factory=dict)
    """Per detector: [block index of the last zero, sum of log quantiles since it, count]."""
    events: list[CreepEvent] = Field(default_factory=list)


class CreepWatch:
    """Detect a creeping p50 / p95 in a stream of latencies (seconds)."""

    __slots__ = (
        "_blocks",
        "_buf",
        "_detectors",
        "_ref",
        "_since",
        "block",
        "events",
        "h",
        "seen",
        "warmup",
    )

    def __init__(self, *, block: int = 64, warmup: int = 200, h: float = 16.0) -> None:
        self.block = block
        self.warmup = warmup
        self.h = h
        self._buf = array("d")
        self.seen = 0
        self._blocks = 0
        self.events: list[CreepEvent] = []
        self._detectors = {
            name: CUSUM(k=0.5, h=h, warmup=warmup, direction="up") for name in _QUANTILES
        }
        self._ref = dict.fromkeys(_QUANTILES, 0.0)
        self._since = {name: [0.0, 0.0, 0.0] for name in _QUANTILES}

    @property
    def buffer(self) -> array[float]:
        """Latencies not yet folded into blocks."""
        return self._buf

    def consume(self, values: np.ndarray) -> None:
        """Take a batch of latencies in arrival order (the sketch's fold hook)."""
        self._buf.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        if len(self._buf) >= self.block:
            self.fold()

    def fold(self) -> None:
        """Turn the buffered latencies into blocks and feed the detectors."""
        values = np.frombuffer(self._buf, dtype=np.float64)
        values = values[np.isfinite(values) & (values > 0)]
        whole = values.size // self.block
        rest = values[whole * self.block :].copy()
        del self._buf[:]
        self._buf.extend(rest.tolist())
        if not whole:
            return
        blocks = np.sort(np.log(values[: whole * self.block].reshape(whole, self.block)), axis=1)
        stats = {name: _quantile(blocks, q) for name, q in _QUANTILES.items()}
        base = self._blocks
        for name, detector in self._detectors.items():
            self._advance(name, detector, stats[name], base)
        self._blocks = base + whole
        self.seen += whole * self.block

    def _advance(self, name: str, detector: CUSUM, x: np.ndarray, base: int) -> None:
        """Feed block quantiles ``x`` (blocks ``base + 1 ...``): value by value while the
        detector learns its level or alarms, vectorised in between (the CUSUM recursion
        ``S = max(0, S + z - k)`` is a reflected random walk: ``S_t = C_t - min(0, min C)``),
        with the same result as :meth:`CUSUM.update` in a loop."""
        i = 0
        while i < x.size:
            reference = detector.reference
            if reference is None:
                self._blocks = base + i + 1
                self._step(name, detector, float(x[i]))
                i += 1
                continue
            mean, sd = reference
            sd = max(sd, 1e-9 * abs(mean), 1e-300)
            z = np.clip((x[i:] - mean) / sd, -detector.clip, detector.clip)
            walk = detector._pos + np.cumsum(z - detector.k)
            level = walk - np.minimum(0.0, np.minimum.accumulate(walk))
            over = np.flatnonzero(level > detector.h)
            stop = int(over[0]) if over.size else level.size
            if stop:
                since = self._since[name]
                zeros = np.flatnonzero(level[:stop] == 0.0)
                if zeros.size:
                    last = int(zeros[-1])
                    since[:] = [float(base + i + last + 1), float(x[i + last + 1 : i + stop].sum())]
                    since.append(float(stop - last - 1))
                else:
                    since[1] += float(x[i : i + stop].sum())
                    since[2] += stop
                neg = detector._neg + np.cumsum(-z[:stop] - detector.k)
                detector._neg = float(neg[-1] - min(0.0, float(np.minimum.accumulate(neg)[-1])))
                detector._pos = float(level[stop - 1])
                detector._n += stop
                detector._drift = False
            i += stop
            if i < x.size:  # the alarm: bookkept by the detector itself
                self._blocks = base + i + 1
                self._step(name, detector, float(x[i]))
                i += 1

    def _step(self, name: str, detector: CUSUM, value: float) -> None:
        since = self._since[name]
        if detector.warming_up:
            self._ref[name] += value
            detector.update(value)
            if detector.reference is not None:  # warm-up just ended
                since[:] = [float(self._blocks), 0.0, 0.0]
            return
        if detector.update(value).drift_detected:
            before = math.exp(self._ref[name] / self.warmup)
            total, count = since[1] + value, since[2] + 1
            self.events.append(
                CreepEvent(
                    quantile=name,
                    started=int(since[0]) * self.block + 1,
                    detected=self._blocks * self.block,
                    before=before,
                    after=math.exp(total / count),
                )
            )
            self._ref[name] = 0.0  # the detector re-learns the new level
            return
        if detector._pos == 0.0:  # the climb, if any, starts after this block
            since[:] = [float(self._blocks), 0.0, 0.0]
        else:
            since[1] += value
            since[2] += 1

    def reset(self) -> None:
        self.__init__(block=self.block, warmup=self.warmup, h=self.h)  # type: ignore[misc]

    def state(self) -> CreepState:
        return CreepState(
            block=self.block,
            warmup=self.warmup,
            h=self.h,
            seen=self.seen,
            pending=list(self._buf),
            detectors={n: d.state() for n, d in self._detectors.items()},
            reference=dict(self._ref),
            since_zero={n: list(v) for n, v in self._since.items()},
            events=list(self.events),
        )

    @classmethod
    def from_state(cls, state: CreepState) -> CreepWatch:
        watch = cls(block=state.block, warmup=state.warmup, h=state.h)
        watch.seen = state.seen
        watch._blocks = state.seen // state.block
        watch._buf.extend(state.pending)
        watch._detectors = {n: CUSUM.from_state(d) for n, d in state.detectors.items()}
        watch._ref = dict(state.reference)
        watch._since = {n: list(v) for n, v in state.since_zero.items()}
        watch.events = list(state.events)
        return watch
