"""The watcher on a host of the systemd render reads its units' states from `systemctl show`
and speaks of them as of supervisord's programs, so that the healing rules (keep a fenced
node's Patroni stopped until another node leads) apply unchanged. Pure parts."""

from __future__ import annotations

import pytest

from hastack.runtime.healing import RUNNING_STATES
from hastack.runtime.systemd_units import parse_show, supervisor_state

SHOW = """\
Id=hastack-demo-pg1-patroni.service
LoadState=loaded
ActiveState=active
SubState=running

Id=hastack-demo-pg1-etcd.service
LoadState=loaded
ActiveState=activating
SubState=auto-restart

Id=hastack-demo-pg9-patroni.service
LoadState=not-found
ActiveState=inactive
SubState=dead
"""


def test_systemctl_show_is_read_unit_by_unit() -> None:
    assert parse_show(SHOW) == {
        "hastack-demo-pg1-patroni.service": "RUNNING",
        "hastack-demo-pg1-etcd.service": "BACKOFF",
        "hastack-demo-pg9-patroni.service": "UNKNOWN",
    }


@pytest.mark.parametrize(
    ("active", "sub", "state"),
    [
        ("active", "running", "RUNNING"),
        ("reloading", "reload", "RUNNING"),
        ("activating", "start", "STARTING"),
        ("activating", "auto-restart", "BACKOFF"),
        ("deactivating", "stop-sigterm", "STOPPING"),
        ("inactive", "dead", "STOPPED"),
        ("failed", "failed", "FATAL"),
        ("maintenance", "", "UNKNOWN"),
    ],
)
def test_unit_states_in_supervisords_words(active: str, sub: str, state: str) -> None:
    assert supervisor_state(active, sub) == state


def test_systemd_restarting_a_unit_is_taken_care_of_and_a_stop_is_not() -> None:
    """The healer leaves alone what systemd is restarting; a unit stopped (the fence) or
    failed for good is the healer's to start when its rules allow."""
    assert supervisor_state("activating", "auto-restart") in RUNNING_STATES
    assert supervisor_state("inactive", "dead") not in RUNNING_STATES
    assert supervisor_state("failed", "failed") not in RUNNING_STATES
