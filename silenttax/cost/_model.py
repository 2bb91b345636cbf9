"""CostModel: what an inference costs, as capacity cost and as realized cost."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field

from silenttax._parse import to_float
from silenttax._state import State
from silenttax.errors import InputError
from silenttax.report import Report, Severity
from silenttax.report._codes import make_finding

__all__ = ["SECONDS_PER_MONTH", "CostComparison", "CostModel"]

#: Average month: 365.25 / 12 days.
SECONDS_PER_MONTH = 365.25 / 12 * 86400


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (value >= 0 if allow_zero else value > 0):
        raise InputError(
            f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}"
        )
    if not math.isfinite(to_float(value)):
        raise InputError(f"{name} must be finite, got {value!r}")
    return float(value)


class CostModel(State):
    """The price of a deployment, and what that makes each inference cost.

    Two views, kept apart on purpose:

    - **capacity cost** (:meth:`cost_per_1k`): ``1000 * price * instances /
      (3600 * throughput * utilization)`` — what 1000 inferences cost when
      the deployment's measured ``throughput`` (inferences/s, all instances,
      shadow pipeline included) is used at ``utilization``;
    - **realized cost** (:meth:`realized_cost_per_1k`): ``1000 * price *
      instances * hours / inferences`` — what the bill says, idle time,
      warm-up and autoscaling lag included.

    Money is in ``currency`` per instance-hour; time in seconds or hours as
    named.

    Args:
        price_per_hour: Price of one instance for one hour, in ``currency``.
        instances: Instances (replicas, or GPUs when priced per GPU).
        currency: ISO code of the currency, used as the unit of money figures.

    Examples:
        >>> model = CostModel(price_per_hour=3.06, instances=2)
        >>> round(model.cost_per_1k(throughput=400, utilization=0.6), 5)
        0.00708
        >>> round(model.realized_cost_per_1k(inferences=2_000_000, hours=24), 4)
        0.0734
    """

    KIND: ClassVar[str] = "silenttax.cost_model"

    price_per_hour: float
    """Price of one instance-hour, in ``currency``."""
    instances: float = 1.0
    """Number of instances billed."""
    currency: str = "USD"
    """Currency of every money figure."""

    def __init__(
        self,
        *,
        price_per_hour: float,
        instances: float = 1.0,
        currency: str = "USD",
        **header: Any,
    ) -> None:
        # A custom __init__ so bad prices raise InputError naming the argument;
        # ``header`` carries ``kind``/``schema_version`` when a saved model loads.
        fields: dict[str, Any] = {
            "price_per_hour": _positive("price_per_hour", price_per_hour, allow_zero=True),
            "instances": _positive("instances", instances),
            "currency": currency,
        }
        super().__init__(**header, **fields)

    @property
    def cost_per_hour(self) -> float:
        """Price of the whole deployment for one hour."""
        return self.price_per_hour * self.instances

    def cost_per_1k(self, throughput: float, utilization: float = 1.0) -> float:
        """Capacity cost of 1000 inferences.

        Args:
            throughput: Sustained inferences per second of the whole deployment
                at full load (measure it end to end, in the production thread
                configuration).
            utilization: Useful share of paid capacity, in (0, 1].
        """
        _positive("throughput", throughput)
        if not 0 < utilization <= 1:
            raise InputError(f"utilization must be in (0, 1], got {utilization!r}")
        return 1000.0 * self.cost_per_hour / (3600.0 * throughput * utilization)

    def realized_cost_per_1k(self, *, inferences: float, hours: float) -> float:
        """Realized cost of 1000 inferences: what was billed over what was served.

        Args:
            inferences: Inferences served in the period.
            hours: Wall-clock hours the deployment was billed for.
        """
        _positive("inferences", inferences)
        _positive("hours", hours, allow_zero=True)
        return 1000.0 * self.cost_per_hour * hours / inferences

    def monthly_cost(self, *, traffic: float, throughput: float, utilization: float = 1.0) -> float:
        """Money per month to serve ``traffic`` inferences/s at the capacity cost."""
        _positive("traffic", traffic, allow_zero=True)
        return traffic * SECONDS_PER_MONTH / 1000.0 * self.cost_per_1k(throughput, utilization)

    def what_if(
        self,
        throughput_before: float,
        throughput_after: float,
        *,
        traffic: float,
        utilization: float = 1.0,
        label: str = "candidate",
    ) -> CostComparison:
        """Compare two throughputs (e.g. before/after quantization) as money per month.

        Args:
            throughput_before: Deployment throughput now, inferences/s.
            throughput_after: Deployment throughput with the change, inferences/s.
            traffic: Average inferences/s to serve.
            utilization: Useful share of paid capacity, in (0, 1].
            label: Name of the change, used in the report.

        Examples:
            >>> model = CostModel(price_per_hour=1.2)
            >>> cmp = model.what_if(200, 500, traffic=150, utilization=0.5)
            >>> round(cmp.monthly_before), round(cmp.monthly_after), round(cmp.monthly_saving)
            (1315, 526, 789)
        """
        before = self.cost_per_1k(throughput_before, utilization)
        after = self.cost_per_1k(throughput_after, utilization)
        volume = _positive("traffic", traffic, allow_zero=True) * SECONDS_PER_MONTH / 1000.0
        return CostComparison(
            label=label,
            currency=self.currency,
            throughput_before=throughput_before,
            throughput_after=throughput_after,
            traffic=traffic,
            utilization=utilization,
            cost_per_1k_before=before,
            cost_per_1k_after=after,
            monthly_before=before * volume,
            monthly_after=after * volume,
        )


class CostComparison(State):
    """Cost before and after a change in throughput (from :meth:`CostModel.what_if`).

    A measurement, so a snapshot: it saves, and reloads with ``silenttax.load``.
    """

    KIND: ClassVar[str] = "silenttax.cost_comparison"

    label: str
    """Name of the change."""
    currency: str
    """Currency of the money figures."""
    throughput_before: float
    """Inferences/s before."""
    throughput_after: float
    """Inferences/s after."""
    traffic: float
    """Average inferences/s served."""
    utilization: float
    """Useful share of paid capacity."""
    cost_per_1k_before: float
    """Capacity cost per 1000 inferences before."""
    cost_per_1k_after: float
    """Capacity cost per 1000 inferences after."""
    monthly_before: float
    """Money per month before, at ``traffic``."""
    monthly_after: float
    """Money per month after, at ``traffic``."""
    notes: list[str] = Field(default_factory=list)
    """Caveats."""

    @property
    def monthly_saving(self) -> float:
        """Money saved per month (negative: the change costs more)."""
        return self.monthly_before - self.monthly_after

    @property
    def ratio(self) -> float:
        """Cost after / cost before."""
        return self.cost_per_1k_after / self.cost_per_1k_before

    def report(self) -> Report:
        """One ``cost.what_if`` finding with the figures (INFO, or WARNING if it costs more)."""
        more = self.ratio > 1
        cur = self.currency
        message = (
            f"{self.label}: {self.cost_per_1k_before:.4g} -> {self.cost_per_1k_after:.4g} {cur} "
            f"per 1000 inferences ({(self.ratio - 1) * 100:+.0f}%); at {self.traffic:g} inf/s "
            f"that is {self.monthly_before:,.0f} -> {self.monthly_after:,.0f} {cur}/month "
            f"({'extra cost' if more else 'saving'} {abs(self.monthly_saving):,.0f} {cur}/month)"
        )
        return Report(
            findings=[
                make_finding(
                    "cost.what_if",
                    severity=Severity.WARNING if more else Severity.INFO,
                    subject=self.label,
                    message=message,
                    metric="cost_per_1k",
                    value=self.cost_per_1k_after,
                    baseline=self.cost_per_1k_before,
                    unit=cur,
                    effect_size=self.ratio,
                    evidence=self.model_dump(),
                    detector="cost.CostComparison",
                )
            ],
            source="cost.CostComparison.report",
        )
