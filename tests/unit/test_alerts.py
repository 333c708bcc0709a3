"""The alert rules: well-formed, each with a runbook section, each tested both ways (the
promtool run itself is in tests/integration/test_10_config_checks.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hastack.render.alerts import (
    ALERTS,
    INHIBITIONS,
    SEVERITIES,
    alert_test_files,
    expand,
    render_alert_rules,
    render_alert_tests,
    render_alertmanager,
)

RUNBOOKS = (Path(__file__).parents[2] / "docs" / "runbooks.md").read_text()


def test_every_alert_is_named_once_with_a_severity_and_a_for_that_means_something() -> None:
    names = [a.name for a in ALERTS]
    assert len(names) == len(set(names))
    for alert in ALERTS:
        assert alert.severity in SEVERITIES, alert.name
        # A `for` shorter than two evaluations fires on one bad scrape; 0 only for counters
        # of events (a fence, restarts), which are already facts.
        assert alert.for_s == 0 or alert.for_s >= 10, alert.name


def test_the_rules_file_is_prometheus_rule_groups() -> None:
    doc = yaml.safe_load(render_alert_rules())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert sorted(r["alert"] for r in rules) == sorted(a.name for a in ALERTS)
    for rule in rules:
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["labels"]["severity"] in SEVERITIES


def test_every_alert_has_a_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9-]", "", line.lstrip("#").strip().lower().replace(" ", "-"))
        for line in RUNBOOKS.splitlines()
        if line.startswith("## ")
    }
    missing = [a.name for a in ALERTS if a.anchor not in headings]
    assert not missing, f"docs/runbooks.md has no section for {missing}"
    for alert in ALERTS:
        section = RUNBOOKS.split(f"## {alert.name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Means**", "**Confirm**", "**Do**"):
            assert part in section, f"{alert.name}: no {part} in its runbook"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    files = render_alert_tests()
    assert len(alert_test_files(files)) == len(ALERTS)
    for alert in ALERTS:
        doc = yaml.safe_load(files[f"test-{alert.anchor}.yml"])
        (fires, quiet) = doc["tests"]
        assert fires["alert_rule_test"][0]["exp_alerts"], alert.name
        assert quiet["alert_rule_test"][0]["exp_alerts"] == [], alert.name
        # Each test file evaluates its own alert's rule, rendered as in the stack's file.
        (rules,) = doc["rule_files"]
        assert yaml.safe_load(files[rules])["groups"][0]["rules"][0]["alert"] == alert.name


def test_descriptions_render_as_prometheus_does() -> None:
    text = expand(
        'node {{ $labels.pg_node }}: {{ $value | printf "%.1f" }} %', {"pg_node": "pg2"}, 12.34
    )
    assert text == "node pg2: 12.3 %"
    with pytest.raises(ValueError, match="unsupported template"):
        expand("{{ $value | humanize }}", {}, 1.0)


def test_pages_and_tickets_are_routed_and_inhibitions_name_real_alerts() -> None:
    doc = yaml.safe_load(render_alertmanager("http://127.0.0.1:9999/alerts"))
    routes = {r["receiver"]: r["matchers"] for r in doc["route"]["routes"]}
    assert routes == {"page": ['severity=~"P0|P1"'], "ticket": ['severity=~"P2|P3"']}
    names = {a.name for a in ALERTS}
    for rule in INHIBITIONS:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            pattern = matcher.split("=", 1)[1].lstrip("~").strip('"')
            assert any(re.fullmatch(pattern, n) for n in names), matcher
