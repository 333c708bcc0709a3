"""Handing orphans (stack processes no supervisord owns) over to a running supervisord: the
order keeps etcd quorum, never restarts the leader's Patroni before its replicas', and stops
the watcher before it can act on a cluster being handed over."""

from __future__ import annotations

import pytest

from hastack.runtime.orphans import (
    NEVER_ORPHANS,
    Identity,
    StackProcess,
    adoption_order,
    classify,
    orphans_among,
    takeover_candidates,
)

PIDS = iter(range(1000, 2000))


def proc(component: str, unit: str) -> StackProcess:
    return StackProcess(next(PIDS), f"hs-demo-{unit}", component, unit, component)


def units(batches: list[list[StackProcess]]) -> list[tuple[str, str]]:
    """Each batch as (component, unit); every batch must be one unit of one component."""
    seen = []
    for batch in batches:
        assert len({(p.component, p.unit) for p in batch}) == 1, batch
        seen.append((batch[0].component, batch[0].unit))
    return seen


def test_the_whole_stack_is_adopted_in_order() -> None:
    orphans = [
        proc("app", "app2"),
        proc("other", "pg1"),
        proc("redis", "redis"),
        proc("pgbouncer", "pgbouncer"),
        proc("haproxy", "haproxy"),
        proc("patroni", "pg1"),
        proc("patroni", "pg2"),
        proc("patroni", "pg3"),
        proc("etcd", "pg3"),
        proc("etcd", "pg1"),
        proc("etcd", "pg2"),
        proc("watcher", "fencer"),
        proc("app", "app1"),
    ]
    # Within each component the leader's node comes last (for etcd too, harmlessly: members
    # go one at a time whatever the order).
    assert units(adoption_order(orphans, leader="pg1")) == [
        ("watcher", "fencer"),
        ("etcd", "pg2"),
        ("etcd", "pg3"),
        ("etcd", "pg1"),
        ("patroni", "pg2"),
        ("patroni", "pg3"),
        ("patroni", "pg1"),
        ("haproxy", "haproxy"),
        ("pgbouncer", "pgbouncer"),
        ("redis", "redis"),
        ("app", "app1"),
        ("app", "app2"),
        ("other", "pg1"),
    ]


@pytest.mark.parametrize(
    ("leader", "patroni_order"),
    [
        pytest.param("pg1", ["pg2", "pg3", "pg1"], id="leader-pg1"),
        pytest.param("pg2", ["pg1", "pg3", "pg2"], id="leader-pg2"),
        pytest.param("pg3", ["pg1", "pg2", "pg3"], id="leader-pg3"),
        pytest.param(None, ["pg1", "pg2", "pg3"], id="no-leader"),
        pytest.param("pg9", ["pg1", "pg2", "pg3"], id="leader-not-orphaned"),
    ],
)
def test_patroni_replicas_are_adopted_before_the_leader(
    leader: str | None, patroni_order: list[str]
) -> None:
    # Restarting the leader's Patroni last keeps the primary in place while replicas move.
    orphans = [proc("patroni", n) for n in ("pg3", "pg1", "pg2")]
    assert [u for _, u in units(adoption_order(orphans, leader))] == patroni_order


def test_one_batch_holds_every_process_of_one_unit() -> None:
    # Several processes of one unit (an app's workers) are handed over together.
    workers = [proc("app", "app1") for _ in range(3)]
    other = proc("app", "app2")
    batches = adoption_order([workers[0], other, workers[1], workers[2]], leader=None)
    assert batches == [workers, [other]]


def test_nothing_to_adopt_gives_no_batch() -> None:
    assert adoption_order([], leader="pg1") == []


class _Proc:
    """What `classify` reads of a process: its pid and command line."""

    def __init__(self, *argv: str) -> None:
        self.pid = next(PIDS)
        self.argv = list(argv)

    def cmdline(self) -> list[str]:
        return self.argv


IDENTITY = Identity(
    nodes={"hs-demo-pg1": "pg1"},
    services={"hs-demo-backup": "backup", "hs-demo-haproxy": "haproxy"},
    apps={},
    watcher_config="/var/lib/hastack/demo/fencing/watcher.json",
)


@pytest.mark.parametrize(
    ("user", "name", "argv", "component", "unit"),
    [
        ("hs-demo-pg1", "pgbackrest", ("pgbackrest", "--config=x", "server"), "pgbackrest", "pg1"),
        ("hs-demo-backup", "pgbackrest", ("pgbackrest", "server"), "pgbackrest", "backup"),
        # detached archive-push, a backup or restore the CLI started: they end by themselves
        (
            "hs-demo-pg1",
            "pgbackrest",
            ("pgbackrest", "archive-push:async"),
            "job",
            "pg1",
        ),
        ("hs-demo-backup", "pgbackrest", ("pgbackrest", "backup"), "job", "backup"),
        # PostgreSQL's archive_command and restore_command run through sh -c
        (
            "hs-demo-pg1",
            "sh",
            ("sh", "-c", "/usr/bin/pgbackrest --stanza=demo archive-push pg_wal/0001"),
            "job",
            "pg1",
        ),
        ("hs-demo-pg1", "sh", ("sh", "-c", "sleep 100"), "other", "pg1"),
        # a standby cluster's restore_command bounds its fetch from the primary's repository
        (
            "hs-demo-pg1",
            "timeout",
            ("/usr/bin/timeout", "10", "/usr/bin/pgbackrest", "--stanza=main", "archive-get"),
            "job",
            "pg1",
        ),
        ("hs-demo-pg1", "timeout", ("timeout", "10", "sleep", "100"), "other", "pg1"),
        # what a verification runs as the repository user, outside supervisord
        ("hs-demo-backup", "pg_amcheck", ("pg_amcheck", "--all"), "job", "backup"),
        ("hs-demo-backup", "pg_ctl", ("pg_ctl", "start"), "job", "backup"),
        # the scratch instance of a restore, like a node's PostgreSQL, is never an orphan
        ("hs-demo-backup", "postgres", ("postgres", "-D", "x"), "postgres", "backup"),
        ("hs-demo-backup", "python3", ("python3", "-m", "scheduler"), "backup", "backup"),
        ("hs-demo-pg1", "etcd", ("etcd",), "etcd", "pg1"),
    ],
)
def test_classify_backup_processes(
    user: str, name: str, argv: tuple[str, ...], component: str, unit: str
) -> None:
    found = classify(IDENTITY, _Proc(*argv), user, name)  # type: ignore[arg-type]
    assert found is not None
    assert (found.component, found.unit) == (component, unit)
    assert (component in NEVER_ORPHANS) == (component in ("postgres", "job"))


def test_pgbackrest_of_another_user_is_not_the_stacks() -> None:
    assert classify(IDENTITY, _Proc("pgbackrest", "server"), "postgres", "pgbackrest") is None  # type: ignore[arg-type]


def test_a_pgbackrest_connection_beside_its_supervised_server_is_not_an_orphan() -> None:
    # pgBackRest's TLS server detaches the process serving each connection (init adopts it):
    # with the user's server supervised, that process is a connection, not an orphan.
    server = StackProcess(10, "hs-demo-backup", "pgbackrest", "backup", "pgbackrest")
    connection = StackProcess(11, "hs-demo-backup", "pgbackrest", "backup", "pgbackrest")
    node_server = StackProcess(12, "hs-demo-pg1", "pgbackrest", "pg1", "pgbackrest")
    haproxy = StackProcess(13, "hs-demo-haproxy", "haproxy", "haproxy", "haproxy")
    everything = [server, connection, node_server, haproxy]
    # supervisord owns the repository host's server but not pg1's (killed by hand, say).
    assert orphans_among(everything, owned={10, 13}) == [node_server]
    # supervisord gone: every server and connection is an orphan.
    assert orphans_among(everything, owned=set()) == [server, connection, node_server, haproxy]


def test_a_helper_process_of_a_node_user_is_not_a_reason_to_run_up() -> None:
    """Seen in a test run: during a cluster-loss drill's restore, a short-lived helper run as
    pg1's user looked like an orphan; the watcher ran `up`, which started the etcd members the
    restore held down, and a second etcd cluster was born under Patroni."""
    helper = StackProcess(4789, "hs-demo-pg1", "other", "pg1", "rm")
    patroni = StackProcess(4790, "hs-demo-pg1", "patroni", "pg1", "python3")
    assert takeover_candidates([helper]) == []
    assert takeover_candidates([helper, patroni]) == [patroni]
