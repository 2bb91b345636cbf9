"""Prometheus recording and alerting rules, their ``promtool`` unit tests, and a Grafana
dashboard, built from the metric names the collector exports.

``silenttax serving rules --out DIR`` writes the three files; :func:`write` does the same
from Python. Every expression names metrics through
:class:`~silenttax.integrations.prometheus.SilentTaxCollector`'s own table, so a renamed
metric cannot leave a rule behind (a test runs ``promtool check rules`` and ``promtool
test rules`` on what this module writes, and the unit tests fire and clear every alert).

The alerts read two kinds of series:

- silenttax's own judgement, ``silenttax_findings{code, severity}`` (mount the scrape
  with ``instrument(app, findings=True)``): latency SLO and creep, the shadow pipeline's
  share, cost per 1000 inferences, feature type / null / padding findings, the error
  budget (``stability.error_rate``) and a rise against the baseline window
  (``stability.error_rise``), overload (``stability.overload``), silenttax's own time
  (``stability.self_time``), ``stability.internal_error``. The check already
  holds the statistics (confidence bounds, persistence), so a rule only asks that the
  finding stays active ``for`` a while;
- raw series where PromQL is the natural judge: the 5xx / exception ratio per route
  (with a minimum request rate, so one error in a quiet minute is not an alert), p99 over
  an SLO you state, scrapes that fail or are slow.

Examples:
    >>> groups = rules()["groups"]
    >>> [g["name"] for g in groups]
    ['silenttax.recording', 'silenttax.alerts']
    >>> [a["alert"] for a in groups[1]["rules"]][:3]
    ['SilentTaxLatencySLO', 'SilentTaxLatencyCreep', 'SilentTaxShadowPipeline']
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from silenttax.errors import InputError

__all__ = ["ALERTS", "dashboard", "render_yaml", "rule_tests", "rules", "write"]

RULES_FILE = "silenttax-rules.yml"
TESTS_FILE = "silenttax-rules.test.yml"
DASHBOARD_FILE = "silenttax-dashboard.json"

#: Finding-based alerts: name -> (codes, ``for``, what it means).
ALERTS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "SilentTaxLatencySLO": (("latency.slo",), "10m", "a latency quantile is over its SLO"),
    "SilentTaxLatencyCreep": (("latency.creep",), "15m", "latency crept up and stayed up"),
    "SilentTaxShadowPipeline": (
        ("pipeline.shadow_overhead", "pipeline.stage_time"),
        "30m",
        "time outside the model (validation, logging, serialization, queueing) is material",
    ),
    "SilentTaxCostPer1kIncrease": (
        ("cost.per_1k_increase",),
        "1h",
        "cost per 1000 inferences rose against its baseline",
    ),
    "SilentTaxFeatureSchema": (
        (
            "feature.type_change",
            "feature.numeric_string",
            "feature.whitespace",
            "feature.missing_column",
        ),
        "5m",
        "live features changed type, arrive as (padded) strings or went missing",
    ),
    "SilentTaxFeatureNulls": (
        ("feature.null_rate", "drift.null_rate"),
        "15m",
        "the share of nulls in a live feature rose",
    ),
    "SilentTaxFeatureDrift": (
        ("drift.numeric", "drift.categorical", "drift.boolean"),
        "30m",
        "a live feature drifted from its reference",
    ),
    "SilentTaxErrorBudget": (
        ("stability.error_rate",),
        "5m",
        "a route's failed requests exceed its error budget in the recent windows",
    ),
    "SilentTaxErrorRise": (
        ("stability.error_rise",),
        "10m",
        "a route's failures rose against its own baseline window (still under the budget)",
    ),
    "SilentTaxOverload": (
        ("stability.overload",),
        "5m",
        "requests pile up while throughput stalls: the server is past its capacity",
    ),
    "SilentTaxSelfTime": (
        ("stability.self_time",),
        "15m",
        "silenttax's own work holds the interpreter long enough to delay requests",
    ),
    "SilentTaxInternalError": (
        ("stability.internal_error",),
        "5m",
        "silenttax counted failures of its own (the message at /silenttax/check names them)",
    ),
}


def _names(namespace: str) -> dict[str, str]:
    """Metric key -> exported name (counters with their ``_total``)."""
    from silenttax.integrations.prometheus import SilentTaxCollector

    table = SilentTaxCollector._names_for(namespace)
    return {
        key: name + ("_total" if kind == "counter" else "")
        for key, (kind, name, _labels) in table.items()
    }


def _check(namespace: str, slo: float | None, error_budget: float, min_rate: float) -> None:
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", namespace):
        raise InputError(f"namespace: not a Prometheus metric prefix: {namespace!r}")
    if slo is not None and not (slo > 0 and math.isfinite(slo)):
        raise InputError(f"slo must be positive seconds, got {slo!r}")
    if not 0 < error_budget < 1:
        raise InputError(f"error_budget must be in (0, 1), got {error_budget!r}")
    if not (min_rate >= 0 and math.isfinite(min_rate)):
        raise InputError(f"min_rate must be >= 0 requests/s, got {min_rate!r}")


def rules(
    *,
    namespace: str = "silenttax",
    slo: float | None = None,
    error_budget: float = 0.01,
    min_rate: float = 0.1,
) -> dict[str, Any]:
    """The rule file's content (``groups``): recording rules, then alerting rules.

    Args:
        namespace: The collector's metric prefix.
        slo: A p99 SLO in seconds for the raw-histogram alert ``SilentTaxP99OverSLO``
            (None: no such alert; ``SilentTaxLatencySLO`` reads the monitor's own SLO).
        error_budget: The share of 5xx / exceptions per route that alerts (1%).
        min_rate: Requests per second below which the error ratio is not judged.

    Raises:
        InputError: an argument out of range.
    """
    _check(namespace, slo, error_budget, min_rate)
    m = _names(namespace)
    ns = namespace
    rate = f"sum by (monitor, route) (rate({m['http']}[5m]))"
    errors = f'sum by (monitor, route) (rate({m["http"]}{{status=~"5xx|error"}}[5m]))'
    recording = [
        {"record": f"{ns}:http_requests:rate5m", "expr": rate},
        {"record": f"{ns}:http_errors:ratio_rate5m", "expr": f"{errors} / {rate}"},
    ]
    recording.extend(
        {
            "record": f"{ns}:http_request_seconds:p{q * 100:g}_5m",
            "expr": f"histogram_quantile({q}, sum by (monitor, route, le) "
            f"(rate({m['route']}_bucket[5m])))",
        }
        for q in (0.5, 0.99)
    )
    recording.append(
        {
            "record": f"{ns}:stage_seconds:p99_5m",
            "expr": f"histogram_quantile(0.99, sum by (monitor, stage, le) "
            f"(rate({m['stage']}_bucket[5m])))",
        }
    )
    alerts: list[dict[str, Any]] = []
    for name, (codes, wait, meaning) in ALERTS.items():
        pattern = "|".join(c.replace(".", "\\\\.") for c in codes)  # PromQL: "\\."
        alerts.append(
            {
                "alert": name,
                "expr": f"max by (monitor, code, severity) ({m['findings']}"
                f'{{code=~"{pattern}",severity=~"warning|critical"}}) > 0',
                "for": wait,
                "annotations": {
                    "summary": f"{{{{ $labels.monitor }}}}: {meaning}",
                    "description": "silenttax finding {{ $labels.code }} ({{ $labels.severity }}) "
                    "has been active for " + wait + "; GET /silenttax/check for the figures and "
                    "what to do.",
                },
            }
        )
    alerts.append(
        {
            "alert": "SilentTaxHTTPErrors",
            "expr": f"({ns}:http_errors:ratio_rate5m > {error_budget:g}) "
            f"and on (monitor, route) ({ns}:http_requests:rate5m > {min_rate:g})",
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "{{ $labels.monitor }} {{ $labels.route }}: more than "
                f"{error_budget:.0%} of requests fail (5xx or exceptions)",
                "description": "The error budget is spent: see the route's 5xx in "
                f"{m['http']} and the logs.",
            },
        }
    )
    if slo is not None:
        alerts.append(
            {
                "alert": "SilentTaxP99OverSLO",
                "expr": f"{ns}:http_request_seconds:p99_5m > {slo:g}",
                "for": "10m",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "{{ $labels.monitor }} {{ $labels.route }}: p99 over the "
                    f"{slo:g} s SLO",
                    "description": "Server-side p99 from the histogram buckets (the client "
                    "sees more: accept queues and the network).",
                },
            }
        )
    alerts.append(
        {
            "alert": "SilentTaxScrapeFailing",
            "expr": f"max by (monitor) ({m['scrape_up']}) == 0",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.monitor }}: silenttax cannot read its snapshots",
                "description": "The rest of the scrape is served; the collector's last_error "
                "names the cause (a corrupt file, settings that differ between workers).",
            },
        }
    )
    alerts.append(
        {
            "alert": "SilentTaxScrapeSlow",
            "expr": f"max by (monitor) ({m['scrape_seconds']}) > 0.5",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.monitor }}: reading the fleet's snapshots takes over 0.5 s",
                "description": "Raise the scrape timeout or the snapshot interval; see "
                "docs/serving.md, running a fleet.",
            },
        }
    )
    alerts.append(
        {
            "alert": "SilentTaxFleetBacklog",
            "expr": f"max by (monitor) ({m['fleet_backlog']}) > 0",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.monitor }}: dead workers' snapshot files not yet folded",
                "description": "The fleet's series are left out of the scrapes until they "
                "are folded (seconds after a mass crash); for minutes: a worker cannot "
                "fold them (the collector's last_error, unreadable-* files).",
            },
        }
    )
    return {
        "groups": [
            {"name": f"{ns}.recording", "rules": recording},
            {"name": f"{ns}.alerts", "rules": alerts},
        ]
    }


def _render(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda x: labels.get(x.group(1), ""), template)


def rule_tests(
    *,
    namespace: str = "silenttax",
    slo: float | None = None,
    error_budget: float = 0.01,
    min_rate: float = 0.1,
    rule_file: str = RULES_FILE,
) -> dict[str, Any]:
    """``promtool test rules`` input that fires and then clears every alert of
    :func:`rules` (same arguments) with synthetic series."""
    content = rules(namespace=namespace, slo=slo, error_budget=error_budget, min_rate=min_rate)
    m = _names(namespace)
    tests: list[dict[str, Any]] = []

    def case(rule: dict[str, Any], series: list[dict[str, str]], labels: dict[str, str]) -> None:
        expected = {**labels, **rule.get("labels", {})}
        annotations = {k: _render(v, expected) for k, v in rule["annotations"].items()}
        tests.append(
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "70m",
                        "alertname": rule["alert"],
                        "exp_alerts": [{"exp_labels": expected, "exp_annotations": annotations}],
                    },
                    {"eval_time": "150m", "alertname": rule["alert"], "exp_alerts": []},
                ],
            }
        )

    # 80 minutes on, then 80 off: every ``for`` (at most 1h) has fired by 70m and every
    # rate window has cleared by 150m
    on_off = "1x80 0x80"
    for rule in content["groups"][1]["rules"]:
        name = rule["alert"]
        if name in ALERTS:
            code = ALERTS[name][0][0]
            labels = {"monitor": "app", "code": code, "severity": "warning"}
            selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
            case(rule, [{"series": f"{m['findings']}{{{selector}}}", "values": on_off}], labels)
        elif name == "SilentTaxHTTPErrors":
            route = {"monitor": "app", "route": "/predict"}
            ok = ",".join(f'{k}="{v}"' for k, v in {**route, "status": "2xx"}.items())
            bad = ",".join(f'{k}="{v}"' for k, v in {**route, "status": "5xx"}.items())
            # 600 requests a minute; 5% fail for 80 minutes, then none
            series = [
                {"series": f"{m['http']}{{{ok}}}", "values": "0+570x80 45600+600x80"},
                {"series": f"{m['http']}{{{bad}}}", "values": "0+30x80 2400+0x80"},
            ]
            case(rule, series, route)
        elif name == "SilentTaxP99OverSLO":
            assert slo is not None
            route = {"monitor": "app", "route": "/predict"}
            edges = (slo / 2, slo * 2)
            series = []
            for le, slow, fast in ((edges[0], 0, 600), (edges[1], 600, 600), ("+Inf", 600, 600)):
                sel = ",".join(
                    f'{k}="{v}"'
                    for k, v in {**route, "le": f"{le:g}" if isinstance(le, float) else le}.items()
                )
                # 80 minutes where every request takes ~1.5 SLO, then 80 where they are fast
                series.append(
                    {
                        "series": f"{m['route']}_bucket{{{sel}}}",
                        "values": f"0+{slow}x80 {slow * 80}+{fast}x80",
                    }
                )
            case(rule, series, route)
        else:  # scrape health
            key, values = {
                "SilentTaxScrapeFailing": ("scrape_up", "0x80 1x80"),
                "SilentTaxScrapeSlow": ("scrape_seconds", "2x80 0.01x80"),
                "SilentTaxFleetBacklog": ("fleet_backlog", "300x80 0x80"),
            }[name]
            series = [{"series": f'{m[key]}{{monitor="app"}}', "values": values}]
            case(rule, series, {"monitor": "app"})
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}


def dashboard(*, namespace: str = "silenttax", title: str = "silenttax") -> dict[str, Any]:
    """A Grafana dashboard (JSON model) over the same metric names: traffic, errors,
    latency, stages and the shadow pipeline, cost, live features, active findings and the
    scrape's own health. The data source is a ``datasource`` template variable."""
    m = _names(namespace)
    ns = namespace
    source = {"type": "prometheus", "uid": "${datasource}"}
    panels: list[dict[str, Any]] = []

    def panel(
        name: str, targets: list[tuple[str, str]], unit: str = "short", kind: str = "timeseries"
    ) -> None:
        index = len(panels)
        panels.append(
            {
                "id": index + 1,
                "type": kind,
                "title": name,
                "datasource": source,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {
                        "refId": chr(65 + i),
                        "datasource": source,
                        "expr": expr,
                        "legendFormat": legend,
                    }
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )

    panel("Requests per second by route", [(f"{ns}:http_requests:rate5m", "{{route}}")], "reqps")
    panel(
        "Error ratio (5xx and exceptions)",
        [(f"{ns}:http_errors:ratio_rate5m", "{{route}}")],
        "percentunit",
    )
    panel(
        "Latency p50 / p99 by route (server side)",
        [
            (f"{ns}:http_request_seconds:p50_5m", "p50 {{route}}"),
            (f"{ns}:http_request_seconds:p99_5m", "p99 {{route}}"),
        ],
        "s",
    )
    panel("Stage time p99", [(f"{ns}:stage_seconds:p99_5m", "{{stage}}")], "s")
    panel(
        "Share of request time outside the model", [(m["non_model"], "{{monitor}}")], "percentunit"
    )
    panel("Cost per 1000 inferences", [(m["cost"], "{{monitor}} ({{currency}})")], "currencyUSD")
    panel("Live feature null rate", [(m["null_rate"], "{{feature}}")], "percentunit")
    panel("Live feature drift (effect size)", [(m["drift"], "{{feature}} {{metric}}")])
    panel(
        "Active findings",
        [(f"sum by (code, severity) ({m['findings']})", "{{code}} {{severity}}")],
        kind="table",
    )
    panel(
        "silenttax itself: scrape seconds, internal errors, dead workers' files to fold",
        [
            (m["scrape_seconds"], "scrape {{monitor}}"),
            (m["fleet_backlog"], "files to fold {{monitor}}"),
            (f"increase({m['internal']}[15m])", "internal errors {{monitor}}"),
        ],
    )
    return {
        "title": title,
        "uid": f"{ns}-serving",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["silenttax"],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": panels,
    }


def render_yaml(value: Any, indent: int = 0) -> str:
    """YAML for plain data (dicts, lists, strings, numbers): strings double-quoted, the
    JSON way, which YAML reads as is (no YAML library needed).

    Examples:
        >>> print(render_yaml({"groups": [{"name": "a", "rules": []}]}), end="")
        groups:
          - name: "a"
            rules: []
    """
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}\n"
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:\n{render_yaml(item, indent + 1)}")
            else:
                lines.append(f"{pad}{key}: {render_yaml(item, indent + 1).strip()}\n")
        return "".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]\n"
        lines = []
        for item in value:
            body = render_yaml(item, indent + 1)
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {body.strip()}\n")
        return "".join(lines)
    if isinstance(value, bool):
        return "true\n" if value else "false\n"
    if isinstance(value, int | float):
        return f"{value!r}\n"
    return json.dumps(str(value)) + "\n"


def write(
    out: str | os.PathLike[str],
    *,
    namespace: str = "silenttax",
    slo: float | None = None,
    error_budget: float = 0.01,
    min_rate: float = 0.1,
) -> list[Path]:
    """Write the rule file, its ``promtool`` tests and the Grafana dashboard into ``out``
    (created if missing); returns the paths.

    Examples:
        >>> import tempfile
        >>> [p.name for p in write(tempfile.mkdtemp())]
        ['silenttax-rules.yml', 'silenttax-rules.test.yml', 'silenttax-dashboard.json']
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "namespace": namespace,
        "slo": slo,
        "error_budget": error_budget,
        "min_rate": min_rate,
    }
    written = [folder / RULES_FILE, folder / TESTS_FILE, folder / DASHBOARD_FILE]
    header = "# written by silenttax serving rules; metric names from SilentTaxCollector\n"
    written[0].write_text(header + render_yaml(rules(**options)), encoding="utf-8")
    written[1].write_text(header + render_yaml(rule_tests(**options)), encoding="utf-8")
    written[2].write_text(
        json.dumps(dashboard(namespace=namespace), indent=2) + "\n", encoding="utf-8"
    )
    return written
