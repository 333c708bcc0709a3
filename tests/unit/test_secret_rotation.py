"""Which secrets rotate and how the old value is checked: decided before anything is touched."""

from __future__ import annotations

import pytest

from hastack.errors import HastackError
from hastack.ops.secrets import _ASK, rotate_secret
from hastack.runtime.stack import Stack
from hastack.spec import StackSpec, derive_plan
from hastack.spec.secrets import NOT_ROTATED, SECRET_PURPOSES, Secrets


def test_every_secret_is_either_rotated_and_checked_or_refused_with_a_reason() -> None:
    assert set(SECRET_PURPOSES) == {*Secrets.names(), "app_password"}
    for name in SECRET_PURPOSES:
        assert (name in _ASK) != (name in NOT_ROTATED), name


def _stack() -> Stack:
    return Stack(derive_plan(StackSpec()))  # nothing under its state directory exists


def test_an_unknown_secret_is_named_with_the_known_ones() -> None:
    with pytest.raises(HastackError, match="no secret named 'nope'; known: postgres_password"):
        rotate_secret(_stack(), "nope")


def test_the_salt_seed_is_refused_with_the_reason() -> None:
    with pytest.raises(HastackError, match="scram_salt_seed is not rotated: it is not a password"):
        rotate_secret(_stack(), "scram_salt_seed")


@pytest.mark.parametrize("name", ["app_login", "app_a_password", "app_secret_key_accepted"])
def test_the_parts_of_a_two_step_rotation_point_to_it(name: str) -> None:
    with pytest.raises(HastackError, match=f"{name} is not rotated: .*(app_password|rotate)"):
        rotate_secret(_stack(), name)
