from __future__ import annotations

from hastack.render.patroni import dcs_settings
from hastack.runtime.dcs import dcs_patch
from hastack.spec import StackSpec, derive_plan
from hastack.spec.model import PatroniSpec


def test_same_config_needs_no_patch_even_with_other_spellings() -> None:
    desired = dcs_settings(derive_plan(StackSpec()))
    current = {
        **desired,
        "postgresql": {
            **desired["postgresql"],
            "parameters": {
                **desired["postgresql"]["parameters"],
                "hot_standby": True,  # Patroni may store booleans where we wrote 'on'
                "max_connections": "100",
            },
        },
        "check_timeline": False,  # keys we do not manage are left alone
    }
    assert dcs_patch(current, desired) == {}


def test_changed_timings_and_parameters_are_patched() -> None:
    desired = dcs_settings(derive_plan(StackSpec(patroni=PatroniSpec(ttl_s=30))))
    current = dcs_settings(derive_plan(StackSpec()))
    current["postgresql"]["parameters"].pop("wal_keep_size")
    assert dcs_patch(current, desired) == {
        "ttl": 30,
        "postgresql": {"parameters": {"wal_keep_size": "256MB"}},
    }
