"""What drills promise about alerting: expected alerts fire, quiet drills page nobody."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hastack.drills.alerting import (
    FIRE_DEADLINE_S,
    PAGING,
    QUIET_S,
    AlertPromise,
    alert_expectations,
    first_fired,
    heard_enough,
)
from hastack.drills.scenarios import SCENARIOS
from hastack.drills.timeline import alerts_between
from hastack.render.alerts import ALERTS, RECEIVERS

T0 = 100.0
CHANGED = AlertPromise(fires=("PatroniLeaderChanged", "PostgresqlDown"))


def mark(
    t: float, name: str, severity: str = "P2", node: str | None = None, **kw: object
) -> dict[str, Any]:
    return {
        "t": t,
        "starts_at": kw.get("starts_at", t),
        "name": name,
        "severity": severity,
        "state": kw.get("state", "firing"),
        "node": node,
    }


def test_expected_alerts_must_fire_within_the_deadline() -> None:
    marks = [mark(T0 + 9.0, "PatroniLeaderChanged", node="pg2")]
    found = alert_expectations(CHANGED, marks, T0)
    assert [e["ok"] for e in found] == [True, False]
    assert found[0]["what"] == "alert PatroniLeaderChanged (pg2) fired 9.0 s after the fault"
    assert "never came" in found[1]["what"]
    late = alert_expectations(CHANGED, [*marks, mark(T0 + 60, "PostgresqlDown", "P1", "pg1")], T0)
    assert late[1]["ok"] is False and "came at 60.0 s" in late[1]["what"]


def test_a_repeat_of_an_alert_that_fired_before_the_drill_does_not_count() -> None:
    before = mark(T0 + 3.0, "PatroniLeaderChanged", starts_at=T0 - 40.0)
    assert first_fired([before], "PatroniLeaderChanged", T0) is None
    resolved = mark(T0 + 3.0, "PatroniLeaderChanged", state="resolved")
    assert first_fired([resolved], "PatroniLeaderChanged", T0) is None


def test_a_quiet_drill_fails_on_a_page_not_on_a_ticket() -> None:
    quiet = AlertPromise(pages_nobody=True)
    ticket = [mark(T0 + 12.0, "PatroniLeaderChanged", "P2")]
    assert alert_expectations(quiet, ticket, T0) == [
        {"what": f"no page within {QUIET_S:.0f} s of the fault (paged: none)", "ok": True}
    ]
    paged = [*ticket, mark(T0 + 20.0, "PostgresqlDown", "P1", "pg1")]
    (line,) = alert_expectations(quiet, paged, T0)
    assert line["ok"] is False and "PostgresqlDown (P1)" in line["what"]
    old_page = [mark(T0 + 5.0, "EtcdNoLeader", "P0", starts_at=T0 - 60.0)]
    assert alert_expectations(quiet, old_page, T0)[0]["ok"] is True


def test_listening_stops_when_everything_expected_arrived_or_at_the_deadline() -> None:
    fires = AlertPromise(fires=("PatroniLeaderChanged",))
    assert not heard_enough(fires, [], T0, T0 + 10)
    assert heard_enough(fires, [mark(T0 + 8, "PatroniLeaderChanged")], T0, T0 + 10)
    assert heard_enough(fires, [], T0, T0 + FIRE_DEADLINE_S)
    quiet = AlertPromise(pages_nobody=True)
    assert not heard_enough(quiet, [], T0, T0 + QUIET_S - 1)
    assert heard_enough(quiet, [], T0, T0 + QUIET_S)
    assert AlertPromise().listen_s() == 0 and not AlertPromise().any


def test_promised_alerts_exist_and_paging_matches_alertmanagers_routing() -> None:
    names = {a.name for a in ALERTS}
    promised = {n for s in SCENARIOS.values() for n in s.expect.alerts.fires}
    assert promised and promised <= names
    assert set(PAGING) == {s for s, receiver in RECEIVERS.items() if receiver == "page"}
    quiet = {n for n, s in SCENARIOS.items() if s.expect.alerts.pages_nobody}
    assert {"kill-patroni", "dcs-blip"} <= quiet
    assert "PatroniLeaderChanged" in SCENARIOS["node-loss"].expect.alerts.fires


def test_alert_marks_carry_when_the_alert_started_firing() -> None:
    line = json.dumps(
        {
            "received_at": "2026-11-28T10:00:20.500+00:00",
            "alerts": [
                {
                    "status": "firing",
                    "startsAt": "2026-11-28T10:00:14.123456789Z",
                    "labels": {"alertname": "PostgresqlDown", "severity": "P1", "pg_node": "pg1"},
                },
                {"status": "firing", "startsAt": "garbage", "labels": {"alertname": "X"}},
            ],
        }
    )
    wall0 = datetime(2026, 11, 28, 10, 0, 10, tzinfo=UTC).timestamp()
    found = alerts_between([line], 100.0, 160.0, wall0 - 100.0)
    assert [(round(a["t"], 3), round(a["starts_at"], 3)) for a in found] == [
        (110.5, 104.123),
        (110.5, 110.5),  # unreadable: when it was received
    ]
