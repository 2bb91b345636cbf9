"""Change detectors: false-alarm rate, detection delay and scale-freedom, beside river's.

Targets (serving-monitors issue): with default settings, on stationary noise
fewer than 5% of 20,000-sample streams raise any alarm, a 2-sd step is
detected within a few hundred samples, and the same defaults work on seconds
and milliseconds. river's ADWIN and PageHinkley (defaults) run on the same
streams as the anchor.

Streams: half Gaussian (mean 5, sd 1), half log-normal latencies in seconds
(median 20 ms, sigma 0.5). Step: +2 sd (sd of the first 1000 values) at 1000.

Run: python benchmarks/bench_detectors.py [--streams 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from silenttax.monitor import ADWIN, CUSUM, PageHinkley


def river_detectors() -> dict[str, Callable[[], Any]]:
    try:
        from river import drift
    except ImportError:
        return {}
    return {"river ADWIN()": drift.ADWIN, "river PageHinkley()": drift.PageHinkley}


def feed(detector: Any, stream: np.ndarray) -> list[int]:
    hits = []
    for i, x in enumerate(stream.tolist()):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    return hits


def stationary(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(5.0, 1.0, n) if seed % 2 else rng.lognormal(np.log(0.02), 0.5, n)


def stepped(seed: int) -> np.ndarray:
    x = stationary(100_000 + seed, 3000)
    x[1000:] += 2.0 * x[:1000].std()
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--length", type=int, default=20_000)
    args = parser.parse_args()
    makers: dict[str, Callable[[], Any]] = {
        "silenttax CUSUM()": CUSUM,
        "silenttax PageHinkley()": PageHinkley,
        "silenttax ADWIN()": ADWIN,
        **river_detectors(),
    }
    print(
        f"{args.streams} stationary streams of {args.length:,}; "
        f"{min(args.streams, 100)} step streams (+2 sd at 1000)\n"
    )
    print(
        f"{'detector':26s} {'false-alarm streams':>20s} {'delay median':>13s} "
        f"{'delay p90':>10s} {'missed':>7s} {'s == ms':>8s} {'µs/update':>10s}"
    )
    for name, make in makers.items():
        started = time.process_time()
        false_alarms = sum(
            bool(feed(make(), stationary(seed, args.length))) for seed in range(args.streams)
        )
        updates = args.streams * args.length
        per_update = (time.process_time() - started) / updates * 1e6
        delays, missed, same = [], 0, 0
        n_step = min(args.streams, 100)
        for seed in range(n_step):
            stream = stepped(seed)
            after = [i - 1000 for i in feed(make(), stream) if i >= 1000]
            if after:
                delays.append(after[0])
            else:
                missed += 1
            same += feed(make(), stream) == feed(make(), stream * 1000)
        rate = false_alarms / args.streams
        d50 = statistics.median(delays) if delays else float("nan")
        d90 = float(np.quantile(delays, 0.9)) if delays else float("nan")
        print(
            f"{name:26s} {rate:19.1%} {d50:13.0f} {d90:10.0f} {missed:7d} "
            f"{same / n_step:8.0%} {per_update:10.2f}"
        )


if __name__ == "__main__":
    main()
