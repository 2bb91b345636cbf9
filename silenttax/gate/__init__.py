"""Deployment gate and performance canary: calibrated, and honest about small samples.

``performance_gate(baseline, candidate)`` decides *pass*, *regression* or
*inconclusive* per metric from confidence intervals of ratios, with Holm's
adjustment over the metrics. ``Canary`` watches a live canary against its
control and may be read after every request without inflating false
rollbacks (anytime-valid e-processes on tail exceedances).

Examples:
    >>> import numpy as np
    >>> from silenttax.gate import performance_gate, verdict
    >>> rng = np.random.default_rng(0)
    >>> verdict(performance_gate(rng.lognormal(-4, 0.5, 4000), rng.lognormal(-4, 0.5, 4000)))
    'pass'
"""

from silenttax.gate._canary import (
    Canary,
    CanaryState,
    Decision,
    log_e_above,
    log_e_below,
    log_e_split,
)
from silenttax.gate._gate import Verdict, exit_status, performance_gate, verdict

__all__ = [
    "Canary",
    "CanaryState",
    "Decision",
    "Verdict",
    "exit_status",
    "log_e_above",
    "log_e_below",
    "log_e_split",
    "performance_gate",
    "verdict",
]
