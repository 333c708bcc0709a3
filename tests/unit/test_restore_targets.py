"""Restore targets: parsed and checked before anything is touched; the options pgBackRest
gets for each; what a restored node's settings become on the scratch instance."""

from __future__ import annotations

import shlex

import pytest
import yaml

from hastack.errors import HastackError
from hastack.ops.restore import Target, parse_target, refuse_out_of_range
from hastack.render.patroni import RestoreBootstrap, render_patroni, restore_bootstrap
from hastack.render.pgbackrest import restore_options
from hastack.runtime.scratch import scratch_settings
from hastack.spec import StackSpec, derive_plan
from tests.unit.factories import fixed_secrets


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


def test_a_cluster_restored_from_the_repository_bootstraps_with_pgbackrest() -> None:
    plan = derive_plan(StackSpec())
    node = plan.node("pg1")
    boot = restore_bootstrap(plan, node, RestoreBootstrap("time", "2026-11-27 10:00:00+00:00"))
    argv = shlex.split(boot["command"])
    assert argv[-1] == "restore"
    assert "--type=time" in argv and "--target=2026-11-27 10:00:00+00:00" in argv
    assert not any(a.startswith(("--set", "--archive-mode")) for a in argv)  # archiving stays on
    assert f"--config={node.paths.pgbackrest_config}" in argv
    assert boot["no_params"] is True and boot["keep_existing_recovery_conf"] is False
    recovery = boot["recovery_conf"]
    assert recovery["recovery_target_time"] == "2026-11-27 10:00:00+00:00"
    assert recovery["recovery_target_action"] == "promote"
    assert recovery["recovery_target_timeline"] == "latest"
    assert "archive-get" in recovery["restore_command"]
    latest = restore_bootstrap(plan, node, RestoreBootstrap("latest"))
    assert "--type=default" in shlex.split(latest["command"])
    assert not any(
        k.startswith("recovery_target_") and k != "recovery_target_timeline"
        for k in latest["recovery_conf"]
    )
    with pytest.raises(ValueError):
        restore_bootstrap(plan, node, RestoreBootstrap("immediate"))


def test_only_the_restore_config_bootstraps_from_the_repository() -> None:
    plan = derive_plan(StackSpec())
    secrets = fixed_secrets()
    node = plan.node("pg1")
    normal = yaml.safe_load(render_patroni(plan, node, secrets))
    assert "method" not in normal["bootstrap"]
    restoring = yaml.safe_load(render_patroni(plan, node, secrets, RestoreBootstrap("latest")))
    assert restoring["bootstrap"]["method"] == "pgbackrest"
    assert restoring["bootstrap"]["pgbackrest"]["command"].endswith(" restore")
    restoring["bootstrap"].pop("method")
    restoring["bootstrap"].pop("pgbackrest")
    assert restoring == normal
