"""Build a silenttax Report by hand and print it the way every module does.

Run: python docs/examples/quickstart.py
"""

from silenttax import Finding, Report

report = Report(
    source="quickstart",
    findings=[
        Finding(
            code="latency.p99",
            category="latency",
            severity="warning",
            subject="ranker-v7",
            message="p99 latency 48.1 ms is above the 40 ms SLO (p50 11.9 ms)",
            metric="p99",
            value=0.0481,
            threshold=0.040,
            unit="s",
            recommendation="Profile the model: silenttax.profile.profile_torch(model, inputs)",
        ),
        Finding(
            code="drift.numeric",
            category="data_drift",
            severity="ok",
            subject="age",
            message="KS 0.004 (p = 0.71) on 20k rows: no drift",
            metric="ks",
            value=0.004,
            p_value=0.71,
        ),
        Finding(
            code="cost.per_1k",
            category="cost",
            severity="info",
            subject="ranker-v7",
            message="0.0213 USD per 1000 inferences at 130 inf/s and 60% utilisation",
            metric="cost_per_1k",
            value=0.0213,
            unit="USD",
        ),
    ],
)

print(report)
print()
print(report.to_markdown())
print()
print(f"CI exit code (fail on warning): {report.exit_code(fail_on='warning')}")
