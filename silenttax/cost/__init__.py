"""Cost per 1000 inferences: capacity and realized cost, what-ifs, and cost drift.

Examples:
    >>> from silenttax.cost import CostModel
    >>> round(CostModel(price_per_hour=0.10).cost_per_1k(throughput=10_000), 8)
    2.78e-06
"""

from silenttax.cost._model import SECONDS_PER_MONTH, CostComparison, CostModel
from silenttax.cost._monitor import CostMonitor, CostMonitorState, CostWindow, check_cost

__all__ = [
    "SECONDS_PER_MONTH",
    "CostComparison",
    "CostModel",
    "CostMonitor",
    "CostMonitorState",
    "CostWindow",
    "check_cost",
]
