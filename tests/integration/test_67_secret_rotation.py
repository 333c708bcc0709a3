"""`hastack secrets rotate`: every secret gets a new value across the running stack, the old
one is refused by the component that checks it, and the stack stays healthy."""

from __future__ import annotations

import pytest

from hastack.drills.scenarios import ROTATED_IN_DRILL
from hastack.spec.secrets import NOT_ROTATED, SECRET_PURPOSES
from tests.integration.conftest import Stack

ROTATED = [n for n in SECRET_PURPOSES if n not in NOT_ROTATED and n != "app_secret_key"]
IN_THE_DRILL = set(ROTATED_IN_DRILL)
"""The drill `secret-rotation` (test_50, every `make test`) rotates these under load and fails
when an old value is still accepted; one by one here only in `make test-slow`."""


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in IN_THE_DRILL else n for n in ROTATED],
)
def test_rotation_takes_effect_everywhere_and_the_old_value_is_refused(
    stack: Stack, name: str
) -> None:
    old = getattr(stack.hs.secrets, name)
    result = stack.run("secrets", "rotate", name, "--json")
    assert result.code == 0, (result.out, result.err[-1500:])
    report = result.json()
    assert report["old_refused"] is True, report
    new = getattr(stack.hs.secrets, name)
    assert new != old and len(new) == 32
    code, status = stack.status()
    assert code == 0, status
    if name in ("redis_password", "app_password"):
        # The app instances moved to the new value (they were restarted one at a time).
        assert {"app1", "app2"} <= set(report["reloaded"]), report
    if name == "app_password":
        urls = stack.hs.urls()
        assert all(f"{stack.hs.secrets.app_login}:" in urls[k] for k in ("DATABASE_URL",))


def test_the_app_key_rotates_with_a_grace_period_or_at_once(stack: Stack) -> None:
    old = stack.hs.secrets.app_secret_key
    graced = stack.run("secrets", "rotate", "app_secret_key", "--grace-s", "600", "--json")
    assert graced.code == 0, (graced.out, graced.err[-1500:])
    report = graced.json()
    # Within the grace, a URL signed with the old key still opens (no one is signed out).
    assert report["ok"] and report["old_refused"] is False and report["grace_until"], report
    assert {"app1", "app2"} <= set(report["reloaded"]), report
    assert stack.hs.secrets.app_secret_key != old
    assert stack.hs.secrets.app_secret_key_accepted == old
    at_once = stack.run("secrets", "rotate", "app_secret_key", "--grace-s", "0", "--json")
    assert at_once.code == 0, (at_once.out, at_once.err[-1500:])
    assert at_once.json()["old_refused"] is True, at_once.json()
    assert stack.status()[0] == 0


def test_the_salt_seed_is_not_rotated(stack: Stack) -> None:
    result = stack.run("secrets", "rotate", "scram_salt_seed")
    assert result.code == 1 and "not a password" in result.err
