"""Open-loop load on an in-process model: a stall seen as clients see it, then the
capacity at a p99 SLO with its interval, and the replicas it takes.

Run: python docs/examples/load_capacity.py   (one to two minutes)
"""

import random
import threading
import time

from silenttax.load import capacity, run

slot = threading.Semaphore(1)  # one request at a time, like a single-threaded worker
rng = random.Random(0)
began: list[float] = []


def model() -> None:
    """~2.5 ms of service (exponential); it stalls once for 0.5 s, 1 s in."""
    now = time.perf_counter()
    began.append(began[0] if began else now)
    if 1.0 <= now - began[0] < 1.5:
        time.sleep(1.5 - (now - began[0]))
    with slot:
        time.sleep(rng.expovariate(400))


done = run(model, rate=100, duration=3, seed=1)
print(
    f"{done.requests} requests, p50 {done.p50 * 1e3:.3g} ms, p99 {done.p99 * 1e3:.3g} ms "
    f"(the stall is in it), generator lag p99 {done.lag_p99 * 1e3:.3g} ms, valid {done.valid}"
)

began[:] = [-1e9]  # no more stalls
found = capacity(
    model, slo_p99=0.100, start_rate=100, probe=1.5, confirm=20, max_probes=5, warmup=0.2, seed=2
)
print(found.report().to_text())
if found.safe is not None:
    plan = found.plan(1000, headroom=0.3)
    print(f"{plan['replicas']} replicas for 1000 req/s with 30% headroom")
