"""Latency creep: a level shift that persists, told apart from a hiccup that passes.

Requests are cut into blocks of ``block`` (64) consecutive latencies; each block's
median and 95th percentile, in log seconds (so a slowdown is a shift), are watched
separately. The level is learnt robustly from the first ``warmup`` blocks (50 blocks,
3,200 requests: the median of the block quantiles, and their spread from the median
absolute deviation, so a hiccup in the warm-up moves neither). The warm-up can be
this short because nothing smaller than ``min_shift`` is ever a verdict: the level's
own error after 50 blocks (about 1% for log-normal latencies with sigma 0.3) is a
tenth of that.

**The rule.** A one-sided CUSUM on the block quantiles, with its reference set to
half the material shift (``log(1 + min_shift) / 2`` above the level) and its
threshold ``h`` in units of the block spread, opens a *candidate* the moment the level
looks higher. The candidate becomes **creep** (``latency.creep``, WARNING) only when,
from the change point (the maximum-likelihood step within the candidate, not the
CUSUM's last zero, which lies before the change and halves the size) to now,

- at least ``min_blocks`` blocks (30: 1,920 requests) **and** ``min_seconds`` of wall
  time (60 s) have passed, and
- the level over them is at least ``1 + min_shift`` times the level before (20%).

A candidate whose CUSUM falls back to zero before that is a **hiccup**
(``latency.hiccup``, INFO: when, how long, how high) — a GC pause, a neighbour's burst,
a 3-second stall that came back.

**The present tense.** A confirmed creep stays WARNING while the level holds. When
the last ``min_blocks`` blocks and ``min_seconds`` have been back within half the
material shift of the level before it, the creep has **ended** (INFO, with when).
While one is active, the detector watches for the next shift from the new level, so a
second slowdown is a second event, not a new text on the same warning.

**The size** is the geometric mean of the block quantile after the change point over
the level before, with a 95% interval from the spread of the blocks after the change
and the level's own error.

Calibrated in ``benchmarks/bench_creep.py`` (seeded small version in the tests):
simulated servers at 100 requests/s for a week with GC pauses, neighbour bursts, a
3-second slowdown every few minutes and a diurnal swing of the level.

Times: the watch stamps each fold with the wall clock and spreads the blocks of a
fold evenly between the previous fold and this one (:meth:`CreepWatch.fold` takes
``now`` for simulations and tests).
"""

from __future__ import annotations

import bisect
import math
import time
from array import array
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CreepEvent", "CreepState", "CreepWatch", "Hiccup"]

_QUANTILES = {"p50": 0.5, "p95": 0.95}
_Z = 1.959963984540054  # two-sided 95%: the interval reported
_BATCHES = 10
_T_BATCHES = 2.2621571627409915  # Student's t, 97.5%, 9 degrees of freedom
_SURE = 3.0  # how clearly a rise must clear half the material shift (the change point
# is the best of many: its mean is biased up, and a 1.96 bound let noisy p95s through)
_KEEP_CANDIDATE = 2048  # blocks of a candidate kept (the change point is searched in them)
_KEEP_RECENT = 256  # latest blocks kept to tell when a creep is over (a window of 60 s
# holds fewer below 270 requests/s; above, 16,384 requests decide without the clock)
_KEEP_HICCUPS = 20
REFINE = 10
"""The level is refined with quiet blocks up to this many warm-ups (500 blocks)."""


def _quantile(rows: np.ndarray, q: float) -> np.ndarray:
    """Per-row q-quantile of row-sorted data (linear interpolation, as np.quantile)."""
    at = q * (rows.shape[1] - 1)
    lo = int(at)
    hi = min(lo + 1, rows.shape[1] - 1)
    frac = at - lo
    result: np.ndarray = rows[:, lo] * (1 - frac) + rows[:, hi] * frac
    return result


class CreepEvent(BaseModel):
    """One confirmed latency creep."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    quantile: str
    """``p50`` or ``p95`` (of blocks of requests)."""
    started: int
    """Request (1-based, in valid recordings) where the level changed (the estimate)."""
    detected: int
    """Request where it was confirmed."""
    before: float
    """Block quantile before the change (the level it rose from), seconds."""
    after: float
    """Block quantile after the change, up to confirmation (geometric mean), seconds."""
    low: float = math.nan
    """95% interval of ``after / before``: low end."""
    high: float = math.nan
    """95% interval of ``after / before``: high end."""
    started_at: float | None = None
    """Wall time of the change (Unix seconds)."""
    detected_at: float | None = None
    """Wall time of the confirmation."""
    ended: int | None = None
    """Request where the level was back (None: the creep holds)."""
    ended_at: float | None = None
    """Wall time it ended."""

    @property
    def ratio(self) -> float:
        """after / before."""
        return self.after / self.before if self.before > 0 else math.inf


class Hiccup(BaseModel):
    """A rise that came back before it was creep."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quantile: str
    started: int
    """First request of the rise."""
    ended: int
    """Request where it was over."""
    seconds: float
    """How long it lasted (wall time)."""
    peak: float
    """Highest block quantile over the level."""
    at: float | None = None
    """Wall time it started."""


class _Level(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: float
    """log seconds."""
    se: float


class _Track(BaseModel):
    """One watched quantile's running state."""

    model_config = ConfigDict(extra="forbid")

    warm: list[float] = Field(default_factory=list)
    """Blocks the level is learnt from: the warm-up, then quiet blocks (refined up to
    ``REFINE`` x the warm-up, so a burst in the first minute does not stay in it)."""
    refined: bool = False
    """The level is learnt for good (the learning blocks are dropped)."""
    spread: float | None = None
    levels: list[_Level] = Field(default_factory=list)
    cusum: float = 0.0
    # the candidate: block indices, wall times and values since the CUSUM left zero
    cand_index: list[int] = Field(default_factory=list)
    cand_time: list[float] = Field(default_factory=list)
    cand_x: list[float] = Field(default_factory=list)
    opened: bool = False
    # the latest blocks (to tell when an active creep is over)
    recent_x: list[float] = Field(default_factory=list)
    recent_time: list[float] = Field(default_factory=list)


class CreepState(BaseModel):
    """JSON state of a :class:`CreepWatch`."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        """A watch saved before persistence was a rule (one CUSUM per quantile) re-learns
        its level; its events are kept."""
        if isinstance(data, dict) and "detectors" in data:
            data = {k: v for k, v in data.items()
                    if k not in ("detectors", "reference", "since_zero")}  # fmt: skip
        return data

    block: int
    warmup: int
    h: float
    min_shift: float = 0.2
    min_blocks: int = 30
    min_seconds: float = 60.0
    seen: int = 0
    """Valid latencies folded into blocks so far."""
    pending: list[float] = Field(default_factory=list)
    """Latencies not yet folded."""
    last_time: float | None = None
    tracks: dict[str, _Track] = Field(default_factory=dict)
    events: list[CreepEvent] = Field(default_factory=list)
    hiccups: list[Hiccup] = Field(default_factory=list)


class CreepWatch:
    """Detect a creeping p50 / p95 in a stream of latencies (seconds); see the module docs.

    Args:
        block: Requests per block.
        warmup: Blocks the level is learnt from.
        h: CUSUM threshold (in block spreads) that opens a candidate.
        min_shift: The smallest rise that is creep (0.2: +20%).
        min_blocks: Blocks a rise must hold (and a recovery too).
        min_seconds: Wall seconds a rise must hold (and a recovery too).
    """

    def __init__(
        self,
        *,
        block: int = 64,
        warmup: int = 50,
        h: float = 5.0,
        min_shift: float = 0.2,
        min_blocks: int = 30,
        min_seconds: float = 60.0,
    ) -> None:
        self.block = block
        self.warmup = warmup
        self.h = h
        self.min_shift = min_shift
        self.min_blocks = min_blocks
        self.min_seconds = min_seconds
        self._buf = array("d")
        self.seen = 0
        self._blocks = 0
        self._last_time: float | None = None
        self.events: list[CreepEvent] = []
        self.hiccups: list[Hiccup] = []
        self._tracks = {name: _Track() for name in _QUANTILES}

    @property
    def buffer(self) -> array[float]:
        """Latencies not yet folded into blocks."""
        return self._buf

    @property
    def learning(self) -> bool:
        """Still learning the level (nothing is judged yet)."""
        return self._blocks < self.warmup

    def consume(self, values: np.ndarray) -> None:
        """Take a batch of latencies in arrival order (the sketch's fold hook)."""
        self._buf.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        if len(self._buf) >= self.block:
            self.fold()

    def fold(self, now: float | None = None) -> None:
        """Turn the buffered latencies into blocks and judge them; ``now`` (Unix seconds,
        default the clock) stamps the newest block."""
        now = time.time() if now is None else float(now)
        values = np.frombuffer(self._buf, dtype=np.float64)
        values = values[np.isfinite(values) & (values > 0)]
        whole = values.size // self.block
        rest = values[whole * self.block :].copy()
        del self._buf[:]
        self._buf.extend(rest.tolist())
        if not whole:
            return
        blocks = np.sort(np.log(values[: whole * self.block].reshape(whole, self.block)), axis=1)
        start = now if self._last_time is None else min(self._last_time, now)
        times = np.linspace(start, now, whole + 1)[1:]
        self._last_time = now
        stats = {name: _quantile(blocks, q) for name, q in _QUANTILES.items()}
        base = self._blocks
        for name, track in self._tracks.items():
            self._advance(name, track, stats[name], times, base)
        self._blocks = base + whole
        self.seen += whole * self.block

    # ------------------------------------------------------------------ the rule
    def _advance(
        self, name: str, track: _Track, x: np.ndarray, times: np.ndarray, base: int
    ) -> None:
        i = 0
        if track.spread is None:  # learning the level
            take = min(self.warmup - len(track.warm), x.size)
            track.warm.extend(x[:take].tolist())
            i = take
            if len(track.warm) < self.warmup:
                return
            self._learn(track)
        self._watch(name, track, x, times, base, i, math.log1p(self.min_shift) / 2)

    def _learn(self, track: _Track) -> None:
        """The level and spread from the learning blocks: median and MAD, then the mean
        (as the level after a change is) of the blocks within 3 spreads."""
        warm = np.asarray(track.warm)
        middle = float(np.median(warm))
        spread = max(1.4826 * float(np.median(np.abs(warm - middle))), 1e-6)
        level = float(warm[np.abs(warm - middle) <= 3 * spread].mean())
        track.spread = spread
        track.levels = [_Level(mean=level, se=1.2533 * spread / math.sqrt(warm.size))]

    def _to_milestone(self, track: _Track) -> int:
        """Quiet blocks until the level is learnt again (every warm-up's worth, up to
        ``REFINE`` of them; then never)."""
        if len(track.levels) != 1 or track.refined:
            return 1 << 62
        return self.warmup - len(track.warm) % self.warmup

    def _quiet(self, track: _Track, x: list[float]) -> None:
        """Blocks no hiccup or creep touched: they refine the level while it is young (at
        fixed block counts, so folds of any size give the same verdicts)."""
        while x and len(track.levels) == 1 and not track.refined:
            take = self._to_milestone(track)
            track.warm.extend(x[:take])
            if len(x) >= take:
                self._learn(track)
                if len(track.warm) >= REFINE * self.warmup:
                    track.warm, track.refined = [], True
            x = x[take:]

    def _watch(self, name: str, track: _Track, x: np.ndarray, times: np.ndarray, base: int,
               i: int, half: float) -> None:  # fmt: skip
        while i < x.size:
            level, spread = track.levels[-1].mean, track.spread or 1e-6
            if track.cusum == 0.0 and not track.opened and not self._active(name):
                # vectorised while nothing is open: S = max(0, S + z) is a reflected walk
                # (up to the next time the level is learnt again)
                end = min(x.size, i + self._to_milestone(track))
                z = (x[i:end] - level - half) / spread
                walk = np.cumsum(z)
                s = walk - np.minimum(0.0, np.minimum.accumulate(walk))
                positive = np.flatnonzero(s > 0)
                if positive.size == 0:
                    self._remember(track, x[i:end], times[i:end])
                    self._quiet(track, x[i:end].tolist())
                    i = end
                    continue
                first = int(positive[0])
                self._remember(track, x[i : i + first], times[i : i + first])
                self._quiet(track, x[i : i + first].tolist())
                i += first
            self._step(name, track, float(x[i]), float(times[i]), base + i + 1, half)
            i += 1

    def _remember(self, track: _Track, x: np.ndarray, times: np.ndarray) -> None:
        """Keep the latest blocks: at least ``min_blocks`` and ``min_seconds`` of them."""
        if not x.size:
            return
        xs, ts = track.recent_x, track.recent_time  # in place: one block at a time is cheap
        xs.extend(x.tolist())
        ts.extend(times.tolist())
        # the first block still needed: the window covers min_seconds and min_blocks
        cut = bisect.bisect_right(ts, ts[-1] - self.min_seconds) - 1
        cut = max(0, len(xs) - _KEEP_RECENT, min(cut, len(xs) - self.min_blocks))
        if cut:
            del xs[:cut], ts[:cut]

    def _active(self, name: str) -> list[CreepEvent]:
        return [e for e in self.events if e.quantile == name and e.ended is None]

    def _step(self, name: str, track: _Track, x: float, t: float, index: int,
              half: float) -> None:  # fmt: skip
        """One block (1-based ``index``) once the level is known."""
        spread = track.spread or 1e-6
        self._remember(track, np.asarray([x]), np.asarray([t]))
        level = track.levels[-1]
        track.cusum = max(0.0, track.cusum + (x - level.mean - half) / spread)
        if track.cusum > 0:
            track.cand_index.append(index)
            track.cand_time.append(t)
            track.cand_x.append(x)
            if len(track.cand_x) > _KEEP_CANDIDATE:
                del track.cand_index[0], track.cand_time[0], track.cand_x[0]
            if track.cusum > self.h:
                track.opened = True
            if track.opened:
                self._confirm(name, track, index, t)
        else:
            if track.opened and track.cand_x:
                self._hiccup(name, track, index, t, level.mean)
            else:  # an excursion of the noise: part of the level
                self._quiet(track, [*track.cand_x, x])
            track.cand_index, track.cand_time, track.cand_x = [], [], []
            track.opened = False
        self._maybe_ended(name, track, index, t, half)

    def _confirm(self, name: str, track: _Track, index: int, t: float) -> None:
        x = np.asarray(track.cand_x)
        level = track.levels[-1]
        # the maximum-likelihood step after a known level: argmax (S_n - S_k)^2 / (n - k)
        tail = np.cumsum((x - level.mean)[::-1])[::-1]  # sum of x[k:] - level
        counts = np.arange(x.size, 0, -1)
        k = int(np.argmax(tail**2 / counts * (tail > 0)))
        after = x[k:]
        if after.size < self.min_blocks or t - track.cand_time[k] < self.min_seconds:
            return
        middle = float(np.median(after))  # the blocks a hiccup left alone, as in the warm-up
        after = after[np.abs(after - middle) <= 3 * (track.spread or 1e-6)]
        mean = float(after.mean())
        material = math.log1p(self.min_shift)
        recent = track.cand_x[-self.min_blocks :]
        if mean - level.mean < material or sum(recent) / len(recent) - level.mean < material:
            return  # not as high since the change, or not as high now: a hiccup so far
        sd = float(after.std(ddof=1)) if after.size > 1 else track.spread or 0.0
        se = math.sqrt(sd**2 / after.size + level.se**2)
        shift = mean - level.mean
        if shift - _SURE * se < material / 2:
            return  # material, but not yet clearly above half of it: more blocks decide
        # the interval from batch means (blocks after a change come in clumps: bursts and
        # stalls), with Student's t for their count
        z, spread_se = _Z, sd / math.sqrt(after.size)
        if after.size >= 2 * _BATCHES:
            means = [float(b.mean()) for b in np.array_split(after, _BATCHES)]
            spread_se = max(spread_se, float(np.std(means, ddof=1)) / math.sqrt(_BATCHES))
            z = _T_BATCHES
        se = math.sqrt(spread_se**2 + level.se**2)
        self.events.append(
            CreepEvent(
                quantile=name,
                started=(track.cand_index[k] - 1) * self.block + 1,
                detected=index * self.block,
                before=math.exp(level.mean),
                after=math.exp(mean),
                low=math.exp(shift - z * se),
                high=math.exp(shift + z * se),
                started_at=track.cand_time[k],
                detected_at=t,
            )
        )
        track.levels.append(_Level(mean=mean, se=spread_se))
        track.cusum = 0.0
        track.cand_index, track.cand_time, track.cand_x = [], [], []
        track.opened = False

    def _hiccup(self, name: str, track: _Track, index: int, t: float, level: float) -> None:
        self.hiccups.append(
            Hiccup(
                quantile=name,
                started=(track.cand_index[0] - 1) * self.block + 1,
                ended=index * self.block,
                seconds=max(0.0, t - track.cand_time[0]),
                peak=math.exp(max(track.cand_x) - level),
                at=track.cand_time[0],
            )
        )
        del self.hiccups[:-_KEEP_HICCUPS]

    def _maybe_ended(self, name: str, track: _Track, index: int, t: float, half: float) -> None:
        """The newest active creep is over when the last blocks are back near the level
        it rose from (for ``min_blocks`` blocks and ``min_seconds``)."""
        active = self._active(name)
        if not active or len(track.levels) < 2 or track.opened:
            return
        recent = np.asarray(track.recent_x)
        long_enough = t - track.recent_time[0] >= self.min_seconds or recent.size >= _KEEP_RECENT
        if recent.size < self.min_blocks or not long_enough:
            return
        before = track.levels[-2].mean
        if float(recent.mean()) - before < half:  # back within half the material shift
            event = active[-1]
            ended = event.model_copy(update={"ended": index * self.block, "ended_at": t})
            self.events[self.events.index(event)] = ended
            track.levels.pop()
            track.cusum = 0.0

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self.__init__(  # type: ignore[misc]
            block=self.block, warmup=self.warmup, h=self.h, min_shift=self.min_shift,
            min_blocks=self.min_blocks, min_seconds=self.min_seconds,
        )  # fmt: skip

    def state(self) -> CreepState:
        return CreepState(
            block=self.block,
            warmup=self.warmup,
            h=self.h,
            min_shift=self.min_shift,
            min_blocks=self.min_blocks,
            min_seconds=self.min_seconds,
            seen=self.seen,
            pending=list(self._buf),
            last_time=self._last_time,
            tracks={n: t.model_copy(deep=True) for n, t in self._tracks.items()},
            events=list(self.events),
            hiccups=list(self.hiccups),
        )

    @classmethod
    def from_state(cls, state: CreepState) -> CreepWatch:
        watch = cls(block=state.block, warmup=state.warmup, h=state.h,
                    min_shift=state.min_shift, min_blocks=state.min_blocks,
                    min_seconds=state.min_seconds)  # fmt: skip
        watch.seen = state.seen
        watch._blocks = state.seen // state.block
        watch._buf.extend(state.pending)
        watch._last_time = state.last_time
        watch._tracks = {n: t.model_copy(deep=True) for n, t in state.tracks.items()}
        for name in _QUANTILES:
            watch._tracks.setdefault(name, _Track())
        watch.events = list(state.events)
        watch.hiccups = list(state.hiccups)
        return watch
