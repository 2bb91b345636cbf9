"""Prometheus rules and the Grafana dashboard: checked and unit-tested by Debian's
``promtool`` (every alert fires on synthetic series and clears), names read from the
collector."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from silenttax.cli import main
from silenttax.errors import InputError
from silenttax.integrations import rules
from silenttax.integrations.prometheus import SilentTaxCollector


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("Debian's prometheus (promtool) is not installed (.ci/run installs it)")
    return found


@pytest.mark.parametrize("slo", [None, 0.25])
def test_promtool_checks_the_rules_and_every_alert_fires_and_clears(
    tmp_path: Path, slo: float | None
) -> None:
    promtool = _promtool()
    written = rules.write(tmp_path, slo=slo)
    check = subprocess.run([promtool, "check", "rules", str(written[0])],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", written[1].name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr
    alerts = [r["alert"] for r in rules.rules(slo=slo)["groups"][1]["rules"]]
    tested = [t["alert_rule_test"][0]["alertname"] for t in rules.rule_tests(slo=slo)["tests"]]
    assert sorted(tested) == sorted(alerts)  # one firing-and-clearing case per alert
    assert ("SilentTaxP99OverSLO" in alerts) == (slo is not None)


def test_a_broken_rule_is_caught_by_the_unit_tests(tmp_path: Path) -> None:
    """The promtool tests can fail: an alert whose threshold no longer matches its series."""
    promtool = _promtool()
    written = rules.write(tmp_path)
    text = (
        written[0].read_text().replace("(silenttax_scrape_up) == 0", "(silenttax_scrape_up) == 2")
    )
    written[0].write_text(text)
    test = subprocess.run([promtool, "test", "rules", written[1].name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert test.returncode != 0 and "SilentTaxScrapeFailing" in test.stdout + test.stderr


def test_every_name_in_the_rules_and_the_dashboard_is_exported(tmp_path: Path) -> None:
    exported = set()
    for kind, name, _ in SilentTaxCollector._names_for("silenttax").values():
        exported.update(
            {"counter": [name + "_total"], "histogram": [name + "_bucket"]}.get(kind, [name])
        )
    content = rules.rules(slo=0.2)
    recorded = {r["record"] for r in content["groups"][0]["rules"]}
    texts = [r["expr"] for g in content["groups"] for r in g["rules"]]
    texts += [t["expr"] for p in rules.dashboard()["panels"] for t in p["targets"]]
    for expr in texts:
        for name in re.findall(r"\b(silenttax[a-z0-9_:]*)", expr):
            assert name in exported or name in recorded, (name, expr)
    board = json.loads(rules.write(tmp_path)[2].read_text())
    assert board["uid"] == "silenttax-serving" and len(board["panels"]) == 10


def test_cli_writes_the_files_and_refuses_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serving", "rules", "--out", str(tmp_path / "r"), "--slo", "0.3"]) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "silenttax-dashboard.json", "silenttax-rules.test.yml", "silenttax-rules.yml"
    ]  # fmt: skip
    assert "promtool test rules" in capsys.readouterr().out
    assert main(["serving", "rules", "--out", str(tmp_path), "--error-budget", "1.5"]) == 2
    assert "--error-budget" in capsys.readouterr().err
    assert main(["serving"]) == 2
    with pytest.raises(InputError, match="namespace"):
        rules.rules(namespace="bad-name")
