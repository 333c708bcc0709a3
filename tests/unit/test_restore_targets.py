"""Restore targets: parsed and checked before anything is touched; the options pgBackRest
gets for each; what a restored node's settings become on the scratch instance."""

from __future__ import annotations

import pytest

from hastack.errors import HastackError
from hastack.ops.restore import Target, parse_target, refuse_out_of_range
from hastack.runtime.scratch import restore_options, scratch_settings
from hastack.spec import StackSpec, derive_plan


def test_exactly_one_target() -> None:
    with pytest.raises(HastackError, match="give exactly one restore target"):
        parse_target(None, None, None, False)
    with pytest.raises(HastackError, match="give exactly one restore target"):
        parse_target("2026-11-27 10:00:00", None, "before", False)
    assert parse_target(None, None, None, True) == Target("latest", None)


def test_time_targets_get_an_explicit_offset() -> None:
    t = parse_target("2026-11-27 10:00:00", None, None, False)
    assert t.kind == "time" and t.value == "2026-11-27 10:00:00+00:00"
    assert t.at == 1795773600.0
    t = parse_target("2026-11-27T12:00:00+02:00", None, None, False)
    assert t.at == 1795773600.0
    with pytest.raises(HastackError, match="is not a time"):
        parse_target("yesterday", None, None, False)


@pytest.mark.parametrize(
    ("lsn", "name", "error"),
    [
        ("0/5000060", None, None),
        ("5000060", None, "is not an LSN"),
        (None, "before-migration_1", None),
        (None, "drop table; --", "is not a restore point name"),
    ],
)
def test_lsn_and_name_targets_are_checked(
    lsn: str | None, name: str | None, error: str | None
) -> None:
    if error:
        with pytest.raises(HastackError, match=error):
            parse_target(None, lsn, name, False)
    else:
        assert parse_target(None, lsn, name, False).value == (lsn or name)


def test_times_outside_the_repository_are_refused() -> None:
    t = parse_target("2026-11-27 10:00:00", None, None, False)
    assert t.at is not None
    with pytest.raises(HastackError, match="before the oldest backup ends"):
        refuse_out_of_range(t, oldest_stop=t.at + 60, now=t.at + 3600)
    with pytest.raises(HastackError, match="is in the future"):
        refuse_out_of_range(t, oldest_stop=t.at - 3600, now=t.at - 60)
    with pytest.raises(HastackError, match="holds no backup"):
        refuse_out_of_range(t, oldest_stop=None, now=t.at)
    refuse_out_of_range(t, oldest_stop=t.at - 60, now=t.at + 60)  # inside: fine


def test_restore_options_promote_at_the_target_and_never_archive() -> None:
    assert restore_options("time", "2026-11-27 10:00:00+00:00") == [
        "--type=time",
        "--archive-mode=off",
        "--target=2026-11-27 10:00:00+00:00",
        "--target-action=promote",
    ]
    assert restore_options("latest", None) == ["--type=default", "--archive-mode=off"]
    assert not any(o.startswith("--set") for o in restore_options("time", "x"))


def test_the_scratch_instance_drops_what_ties_it_to_the_cluster() -> None:
    plan = derive_plan(StackSpec())
    settings = scratch_settings(plan)
    assert settings["synchronous_standby_names"] == ""  # no commit waits for a standby
    assert settings["archive_mode"] == "off"  # never archives into the cluster's stanza
    assert settings["listen_addresses"] == plan.backup_address
    assert settings["unix_socket_directories"].startswith(str(plan.paths.backup_dir))
    assert settings["ssl_key_file"] == str(plan.paths.backup_tls_key)
