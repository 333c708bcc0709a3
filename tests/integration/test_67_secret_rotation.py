"""`hastack secrets rotate`: every secret gets a new value across the running stack, the old
one is refused by the component that checks it, and the stack stays healthy."""

from __future__ import annotations

import pytest

from hastack.spec.secrets import NOT_ROTATED, ROTATION_DISRUPTS, SECRET_PURPOSES
from tests.integration.conftest import Stack

QUIET = [n for n in SECRET_PURPOSES if n not in NOT_ROTATED and n not in ROTATION_DISRUPTS]


@pytest.mark.parametrize("name", QUIET)
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


@pytest.mark.parametrize("name", sorted(ROTATION_DISRUPTS))
def test_a_rotation_with_known_disruption_needs_the_flag_and_then_works(
    stack: Stack, name: str
) -> None:
    refused = stack.run("secrets", "rotate", name)
    assert refused.code == 1 and "--allow-disruption" in refused.err
    result = stack.run("secrets", "rotate", name, "--allow-disruption", "--json")
    assert result.code == 0, (result.out, result.err[-1500:])
    assert result.json()["old_refused"] is True, result.json()
    assert stack.status()[0] == 0


def test_the_salt_seed_is_not_rotated(stack: Stack) -> None:
    result = stack.run("secrets", "rotate", "scram_salt_seed")
    assert result.code == 1 and "not a password" in result.err
