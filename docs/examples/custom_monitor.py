"""A custom monitor, complete: record, state, merge, check, register, export, serve.

A batch-size monitor for a model server that batches requests: it records how full
each batch was and says when too many batches run nearly empty (the GPU paid for a
batch of 32 and got 3). Written only against silenttax's public names.

Run: python docs/examples/custom_monitor.py
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from scipy import stats

import silenttax
from silenttax.component import SAME, SUM, State, Stateful, merge_states, register, register_code
from silenttax.errors import InputError
from silenttax.integrations.asgi import SilentTaxMiddleware
from silenttax.integrations.prometheus import SilentTaxCollector
from silenttax.report import Report, make_finding
from silenttax.testing import Examples, check_component

# 1. A code of your own: its category (built-in or yours) and what to do about it.
register_code(
    "mycompany.batch_fill",
    "cost",
    "Too many batches ran nearly empty: the accelerator is paid for and idle.",
    recommendation="Raise the batching window, or lower the batch size.",
)


# 2. The snapshot: a versioned pydantic model; each field declares how replicas merge.
class BatchFillState(State):
    KIND: ClassVar[str] = "mycompany.batch_fill"

    params: Annotated[dict[str, float], SAME]  # settings: must agree to merge
    batches: Annotated[int, SUM] = 0
    sparse: Annotated[int, SUM] = 0  # batches filled below `fill`
    invalid: Annotated[int, SUM] = 0


# 3. The component: O(1) record, never raises on the request path, a pure check.
@register("mycompany.batch_fill")
class BatchFill(Stateful[BatchFillState]):
    STATE: ClassVar[type[State]] = BatchFillState

    def __init__(self, *, size: int = 32, fill: float = 0.25, budget: float = 0.10,
                 alpha: float = 0.01) -> None:  # fmt: skip
        if size < 1 or not (0 < fill < 1 and 0 < budget < 1 and 0 < alpha < 1):
            raise InputError("size >= 1; fill, budget and alpha in (0, 1)")
        self.size, self.fill, self.budget, self.alpha = size, fill, budget, alpha
        self.batches = self.sparse = self.invalid = 0
        self._lock = threading.Lock()

    def record(self, items: Any) -> None:
        """One batch of ``items`` requests (a bad value is counted, never raised)."""
        with self._lock:
            if not isinstance(items, int) or not 0 < items <= self.size:
                self.invalid += 1
                return
            self.batches += 1
            self.sparse += items < self.fill * self.size

    def state(self) -> BatchFillState:
        with self._lock:
            settings = {"size": self.size, "fill": self.fill, "budget": self.budget,
                        "alpha": self.alpha}  # fmt: skip
            return BatchFillState(params=settings, batches=self.batches, sparse=self.sparse,
                                  invalid=self.invalid)  # fmt: skip

    @classmethod
    def from_state(cls, state: BatchFillState) -> Self:
        made = cls(size=int(state.params["size"]), fill=state.params["fill"],
                   budget=state.params["budget"], alpha=state.params["alpha"])  # fmt: skip
        made.batches, made.sparse, made.invalid = state.batches, state.sparse, state.invalid
        return made

    def merge(self, other: BatchFill | BatchFillState) -> Self:
        theirs = other.state() if isinstance(other, BatchFill) else other
        merged = merge_states(self.state(), theirs)  # the declared rules; SAME refuses
        with self._lock:
            self.batches, self.sparse, self.invalid = merged.batches, merged.sparse, merged.invalid
        return self

    def check(self) -> Report:
        """WARNING when the share of sparse batches is significantly over the budget
        (exact binomial test: a server within budget raises it at most `alpha`)."""
        n, k = self.batches, self.sparse
        p = float(stats.binomtest(k, n, self.budget, alternative="greater").pvalue) if n else 1.0
        return Report(findings=[make_finding(
            "mycompany.batch_fill",
            severity="warning" if p < self.alpha else "ok",
            subject="batcher",
            message=f"{k} of {n} batches under {self.fill:.0%} full (budget {self.budget:.0%})",
            metric="sparse_share", value=k / n if n else 0.0, threshold=self.budget, p_value=p,
        )])  # fmt: skip

    def gauges(self) -> dict[str, float]:  # optional: exported to Prometheus
        return {"batches": float(self.batches), "sparse": float(self.sparse)}


# 4. A check function of your own: snapshots by name -> Report (middleware, audit, report).
def slow_routes(snapshots: Mapping[str, Any]) -> Report:
    serving = snapshots.get("serving")
    routes = serving.latency() if serving is not None else {}
    return Report(findings=[make_finding(
        "mycompany.batch_fill", severity="ok", subject=route,
        message=f"p99 {monitor.sketch.quantile(0.99) * 1e3:.1f} ms",
    ) for route, monitor in sorted(routes.items())])  # fmt: skip


def fill(seed: int, n: int = 2000, sparse: float = 0.05) -> BatchFill:
    rng = np.random.default_rng(seed)
    monitor = BatchFill()
    for empty in rng.random(n) < sparse:
        monitor.record(int(rng.integers(1, 8)) if empty else int(rng.integers(8, 33)))
    return monitor


def main() -> None:
    # 5. The contract the built-ins pass, on yours: every broken rule named.
    assert check_component(BatchFill, examples=Examples(
        make=lambda: fill(0),
        halves=lambda: (fill(1, 1000), fill(2, 1000), fill(1, 1000).merge(fill(2, 1000))),
        mismatched=lambda: (fill(0), BatchFill(size=16), "size"),
        bad_input=lambda: BatchFill(fill=2.0),
        hot_path=lambda m: [m.record(x) for x in (None, 0, 99, "8", 3.5)],
    )) == []  # fmt: skip

    # 6. Replicas save, load and merge like any silenttax state (and `silenttax merge`).
    folder = Path(tempfile.mkdtemp())
    for replica, share in enumerate((0.05, 0.30, 0.30)):
        fill(replica, sparse=share).save(folder / f"replica-{replica}.json")
    fleet = silenttax.merge(folder)
    print(fleet.check().to_text(color=False).splitlines()[0])
    assert fleet.batches == 6000 and fleet.check().worst == "warning"

    # 7. Prometheus: its gauges and findings, beside the built-in monitors.
    registry = CollectorRegistry()
    registry.register(SilentTaxCollector({"batcher": fleet}, findings=True))
    text = generate_latest(registry).decode()
    assert 'silenttax_component_value{component="mycompany.batch_fill",monitor="batcher",' in text
    assert 'code="mycompany.batch_fill"' in text

    # 8. Serving: given to the middleware (or instrument(app, checks=[...])), it is saved
    # in every worker's snapshot, merged across the fleet, judged at /silenttax/check.
    batcher = BatchFill()
    middleware = SilentTaxMiddleware(lambda scope, receive, send: None,  # type: ignore[arg-type,return-value]
                                     checks=[batcher, slow_routes])  # fmt: skip
    for _ in range(50):
        batcher.record(2)  # what the handler does per batch
    codes = [(f.code, f.severity.value) for f in middleware.check()]
    assert ("mycompany.batch_fill", "warning") in codes, codes
    restored = silenttax.load(middleware.to_json())
    assert restored.components["mycompany.batch_fill"].batches == 50
    print("custom monitor: contract kept, merged, exported, served")


if __name__ == "__main__":
    main()
