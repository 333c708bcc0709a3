"""Backups on the shared stack: the first full backup `up` took, WAL archiving through the
repository host (across the switchovers of test_45), a backup on demand, a replica rebuilt
from the repository, and who may reach the repository."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from hastack.runtime.lifecycle import StopResult, stop_patroni_ordered, stop_postgres_leftovers
from hastack.runtime.progress import NullProgress
from tests.integration.conftest import Result, Stack
from tests.integration.helpers import wait_until


def _leader(stack: Stack) -> str:
    return str(stack.status()[1]["leader_key"])


def _archiver_failures(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT failed_count FROM pg_stat_archiver").fetchone()
    assert row is not None
    return int(row[0])


def test_up_took_a_first_full_backup_and_archives_wal(stack: Stack) -> None:
    assert stack.up["first_backup"], stack.up  # taken by `up` itself
    result = stack.run("backups", "--json")
    assert result.code == 0, result.err
    view = result.json()
    fulls = [b for b in view["backups"] if b["type"] == "full"]
    assert fulls and fulls[0]["label"] == stack.up["first_backup"]
    assert fulls[0]["verified_at"], "up verifies the first backup"
    assert view["restorable"]["from"] is not None
    # A segment switched on the leader now reaches the repository (pgbackrest check waits
    # for it), whoever leads after test_45's switchovers.
    check = stack.hs.pgbackrest().run("check", timeout_s=120)
    assert check.ok, check.tail()
    code, status = stack.status()
    backups = status["backups"]
    assert backups["last"]["full"] is not None
    assert backups["archive"]["node"] == _leader(stack)
    assert backups["archive"]["failing"] is False, backups["archive"]
    assert backups["archive"]["last_archived_wal"]
    assert not backups["problems"], backups["problems"]
    assert code == 0, status["problems"]


CRAFT = """
import os, sys
crafted, segment, status = sys.argv[1:]
with open(crafted, "r+b") as f:  # one byte past the headers: same name, other content
    f.seek(8 * 1024 * 1024)
    byte = f.read(1)[0]
    f.seek(8 * 1024 * 1024)
    f.write(bytes([byte ^ 0xFF]))
os.replace(crafted, segment)
for old in (status + ".done", status + ".ready"):
    if os.path.exists(old):
        os.unlink(old)
open(status + ".ready", "w").close()
"""


def test_archiving_stuck_behind_an_older_timelines_segment_heals_by_itself(stack: Stack) -> None:
    """What failovers and pg_rewind can leave (seen in a test run): the leader holds a ready
    segment of a timeline it left, with other content than the repository's copy. pgBackRest
    refuses it ([45]) and PostgreSQL archives in order, so archiving stops for good. The
    watcher marks that segment done and archiving goes on, with no hand on the stack."""
    leader = _leader(stack)
    node = stack.hs.plan.node(leader)
    with stack.hs.connect(leader) as conn:
        row = conn.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchone()
    assert row is not None and row[0] > 1, "test_45's switchovers left an older timeline"
    older = sorted(
        p.name.split("-")[0]
        for p in (stack.hs.plan.paths.backup_repo / "archive").glob("*/*/*/*.zst")
        if len(p.name.split("-")[0]) == 24 and int(p.name[:8], 16) < row[0]
    )
    assert older, "the repository holds segments of an older timeline"
    segment = older[-1]
    wal = node.paths.pgdata / "pg_wal"
    crafted = wal / ".crafted"
    as_node = ["runuser", "-u", node.user, "--"]
    pgbackrest = [
        str(stack.hs.plan.spec.binaries.pgbackrest),
        f"--config={node.paths.pgbackrest_config}",
        f"--stanza={stack.hs.plan.stanza}",
    ]
    subprocess.run([*as_node, *pgbackrest, "archive-get", segment, str(crafted)], check=True)
    status_file = wal / "archive_status" / segment
    subprocess.run(
        [*as_node, "python3", "-c", CRAFT, str(crafted), str(wal / segment), str(status_file)],
        check=True,
    )
    with stack.hs.connect(leader) as conn:
        conn.execute("SELECT pg_switch_wal()")
        conn.execute("CREATE TEMP TABLE nudge AS SELECT 1")  # WAL to switch away from
        switched = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    assert switched is not None

    def archived() -> bool:
        with stack.hs.connect(leader) as conn:
            last = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
        return last is not None and last[0] is not None and last[0] >= switched[0]

    started = time.monotonic()
    until_archived = wait_until(archived, timeout_s=150, interval_s=1)
    assert until_archived
    print(f"archiving resumed {time.monotonic() - started:.1f} s after the switch")
    decisions = stack.hs.plan.paths.fencer_log.read_text().splitlines()
    assert any(segment in d and "marked done" in d for d in decisions), decisions[-5:]
    assert not (wal / "archive_status" / f"{segment}.ready").exists()
    _code, status = stack.status()
    assert status["backups"]["archive"]["failing"] is False, status["backups"]["archive"]
    assert not status["backups"]["problems"], status["backups"]["problems"]


def test_backup_on_demand_after_writes(stack: Stack) -> None:
    stack.ensure_scratch_table()
    with stack.hs.connect(_leader(stack)) as conn:
        conn.execute("INSERT INTO it_rows SELECT 'backup-' || g, g FROM generate_series(1, 500) g")
    result = stack.run("backup", "--type", "incr", "--json")
    assert result.code == 0, result.err
    run = result.json()
    assert run["type"] == "incr"
    assert run["size_bytes"] > 0 and run["duration_s"] > 0
    labels = [b["label"] for b in stack.run("backups", "--json").json()["backups"]]
    assert run["label"] in labels


def test_a_full_repository_disk_is_said_and_no_backup_is_lost(stack: Stack) -> None:
    """The repository's backup sets on a filesystem with 1 MiB left (a tmpfs mounted over
    them, holding a copy): a full backup fails with a clear error, the sets stay listed;
    unmounted, the untouched originals take the next backup."""
    hs = stack.hs
    sets = stack.plan.paths.backup_repo / "backup" / stack.plan.stanza
    labels = [b["label"] for b in stack.run("backups", "--json").json()["backups"]]
    page = 4096  # tmpfs gives each file whole pages
    used = sum(-(-f.stat().st_size // page) * page for f in sets.rglob("*") if f.is_file())
    owner = sets.stat()
    scheduler = next(p for p in hs.programs("backup") if p.component == "backup")
    copy = Path(tempfile.mkdtemp(prefix="hastack-it-repo-"))
    with hs.hold(600, "integration test: repository disk full", [scheduler.process_name]):
        hs.supervisor.stop(scheduler.process_name)
        subprocess.run(["cp", "-a", f"{sets}/.", str(copy)], check=True)
        options = f"size={used + 2**20},uid={owner.st_uid},gid={owner.st_gid},mode=750"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(sets)], check=True)
        try:
            subprocess.run(["cp", "-a", f"{copy}/.", str(sets)], check=True)
            full = stack.run("backup", "--type", "full", timeout_s=600)
            listed = [b["label"] for b in stack.run("backups", "--json").json()["backups"]]
        finally:
            subprocess.run(["umount", str(sets)], check=True)
            subprocess.run(["rm", "-rf", str(copy)], check=True)
            hs.supervisor.start(scheduler.process_name)
    assert full.code == 1, full.out
    said = " ".join(full.err.split())  # the console may wrap a long line
    assert "disk is full" in said and "earlier backups are intact" in said, full.err
    assert listed == labels
    after = stack.run("backup", "--type", "incr", "--json")
    assert after.code == 0, after.err


def test_bad_backup_type_is_refused(stack: Stack) -> None:
    result = stack.run("backup", "--type", "weekly")
    assert result.code == 2
    assert "'weekly' is not a backup type" in result.err


def test_a_replica_is_rebuilt_from_the_repository(stack: Stack) -> None:
    replica = next(m["name"] for m in stack.status()[1]["postgres"] if m["role"] == "replica")
    log = stack.plan.paths.program_log(f"{replica}-patroni")
    before = log.read_text().count("replica has been created using pgbackrest")
    result = stack.run("reinit", replica, timeout_s=300)
    assert result.code == 0, result.err
    after = log.read_text().count("replica has been created using pgbackrest")
    assert after == before + 1, "Patroni did not use the pgbackrest method"
    code, status = stack.status()
    assert code == 0, status["problems"]


def test_only_the_repository_host_holds_the_passphrase(stack: Stack) -> None:
    secret = stack.hs.secrets.backup_cipher_pass
    paths = stack.plan.paths
    for node in stack.plan.postgres_nodes:
        assert secret not in node.paths.pgbackrest_config.read_text()
    st = paths.backup_config.stat()
    assert st.st_mode & 0o777 == 0o600
    assert secret in paths.backup_config.read_text()


def test_the_repository_host_refuses_a_certificate_it_does_not_admit(stack: Stack) -> None:
    """hastack's own client certificate is from the stack's CA, but its name is not one of
    the nodes': the repository host refuses it."""
    paths = stack.plan.paths
    with tempfile.TemporaryDirectory() as work:
        proc = subprocess.run(
            [
                str(stack.plan.spec.binaries.pgbackrest),
                "--no-config",
                f"--stanza={stack.plan.stanza}",
                f"--repo1-host={stack.plan.backup_address}",
                "--repo1-host-type=tls",
                f"--repo1-host-port={stack.plan.spec.backup.port}",
                f"--repo1-host-cert-file={paths.client_cert}",
                f"--repo1-host-key-file={paths.client_key}",
                f"--repo1-host-ca-file={paths.ca_cert}",
                f"--repo1-host-config={paths.backup_config}",
                f"--lock-path={work}",
                f"--log-path={work}",
                "info",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert "access denied" in proc.stdout + proc.stderr


def test_restore_to_a_restore_point_into_the_scratch_instance(stack: Stack) -> None:
    stack.ensure_scratch_table()
    leader = _leader(stack)
    with stack.hs.connect(leader) as conn:
        conn.execute("INSERT INTO it_rows VALUES ('pitr-before', 1)")
    point = stack.run("restore-point", "it_before_drop", "--json")
    assert point.code == 0, point.err
    with stack.hs.connect(leader) as conn:
        conn.execute("INSERT INTO it_rows VALUES ('pitr-after', 2)")
    result = stack.run("restore", "--to-name", "it_before_drop", "--json", timeout_s=600)
    assert result.code == 0, result.err
    restored = result.json()
    assert restored["url"].startswith("postgresql://postgres@")
    try:
        again = stack.run("restore", "--latest")
        assert again.code == 1 and "a scratch instance already exists" in again.err
        with stack.hs.scratch().connect() as conn:
            ids = {r[0] for r in conn.execute("SELECT id FROM it_rows WHERE id LIKE 'pitr-%'")}
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        assert ids == {"pitr-before"}
        assert in_recovery == (False,)
        # the cluster was not touched
        with stack.hs.connect(leader) as conn:
            count = conn.execute("SELECT count(*) FROM it_rows WHERE id LIKE 'pitr-%'").fetchone()
        assert count == (2,)
    finally:
        cleaned = stack.run("restore", "--cleanup")
    assert cleaned.code == 0 and "removed" in cleaned.out
    assert not stack.plan.paths.scratch_pgdata.exists()
    assert stack.run("restore", "--cleanup").out.strip() == "no scratch instance to remove"


def test_a_wrong_passphrase_is_refused_and_the_repository_left_alone(stack: Stack) -> None:
    secret = stack.plan.paths.secrets_dir / "backup_cipher_pass"
    original = secret.read_text()
    info_files = sorted(stack.plan.paths.backup_repo.glob("*/*/*.info"))
    assert len(info_files) == 2  # archive.info and backup.info of the stanza
    before = {p: p.read_bytes() for p in info_files}
    try:
        secret.write_text("not-" + original)
        up = stack.run("up", timeout_s=600)
        assert up.code == 1, up.out + up.err
        assert "cannot be decrypted with this stack's passphrase" in up.err
        listed = stack.run("backups")
        assert listed.code == 1 and "put back the passphrase" in listed.err
        code, status = stack.status()
        assert code == 1 and any("cannot be decrypted" in p for p in status["problems"])
        assert {p: p.read_bytes() for p in info_files} == before  # nothing created over it
    finally:
        secret.write_text(original)
    # A segment filled meanwhile may have failed to archive: `up` wakes the archiver.
    _up_heals_archiving(stack)


@pytest.mark.slow
def test_up_wakes_an_archiver_that_failed_while_the_passphrase_was_wrong(stack: Stack) -> None:
    """The same fault, with archiving made to fail for certain: pgBackRest's push fails only
    at its 60 s archive-timeout, then PostgreSQL's archiver waits a minute to try again
    (about 2 min in all: in `make test-slow`)."""
    secret = stack.plan.paths.secrets_dir / "backup_cipher_pass"
    original = secret.read_text()
    try:
        secret.write_text("not-" + original)
        # `up` refuses it, having given pgBackRest's configuration the wrong passphrase.
        assert stack.run("up", timeout_s=600).code == 1
        leader = _leader(stack)
        with stack.hs.connect(leader) as conn:
            failed_before = _archiver_failures(conn)
            conn.execute("CREATE TABLE IF NOT EXISTS it_passphrase (at timestamptz)")
            conn.execute("INSERT INTO it_passphrase VALUES (now())")
            conn.execute("SELECT pg_switch_wal()")
            wait_until(
                lambda: _archiver_failures(conn) > failed_before,
                timeout_s=150,  # pgBackRest's push fails only at its archive-timeout (60 s)
            )
    finally:
        secret.write_text(original)
    # `up` after the fix makes the archiver try again at once: healthy, not a minute later.
    again = _up_heals_archiving(stack)
    assert "waking its archiver" in again.err, again.err[-1500:]


def _up_heals_archiving(stack: Stack) -> Result:
    again = stack.run("up", "--json", timeout_s=600)
    assert again.code == 0, again.out[-3000:] + again.err[-1500:]
    archive = again.json()["status"]["backups"]["archive"]
    assert archive["failing"] is False, archive
    check = stack.hs.pgbackrest().run("check", timeout_s=120)
    assert check.ok, check.tail()
    return again


def test_bad_restore_targets_are_refused_before_anything_is_touched(stack: Stack) -> None:
    early = stack.run("restore", "--to-time", "2020-01-01 00:00:00")
    assert early.code == 1 and "is before the oldest backup ends" in early.err
    future = stack.run("restore", "--to-time", "2999-01-01 00:00:00+00")
    assert future.code == 1 and "is in the future" in future.err
    lsn = stack.run("restore", "--to-lsn", "12345")
    assert lsn.code == 1 and "is not an LSN" in lsn.err
    two = stack.run("restore", "--latest", "--to-name", "x")
    assert two.code == 1 and "give exactly one restore target" in two.err
    elsewhere = stack.run("restore", "--latest", "--target", "elsewhere")
    assert elsewhere.code == 2 and "use scratch or cluster" in elsewhere.err
    assert not stack.plan.paths.scratch_pgdata.exists()


def test_verify_backup_catches_a_corrupted_repository_file(stack: Stack) -> None:
    first = str(stack.up["first_backup"])
    backup_dir = stack.plan.paths.backup_repo / "backup" / stack.plan.stanza / first
    victim = sorted((backup_dir / "pg_data").glob("PG_VERSION*"))[0]
    original = victim.read_bytes()
    try:
        corrupted = bytearray(original)
        corrupted[len(corrupted) // 2] ^= 0xFF
        victim.write_bytes(bytes(corrupted))
        result = stack.run("verify-backup", first, "--json", timeout_s=600)
    finally:
        victim.write_bytes(original)
        # whatever happened above, the set is verified again (status reports a failed one)
        again = stack.run("verify-backup", first, "--json", timeout_s=600)
    assert result.code == 1, result.out
    report = result.json()
    assert report["ok"] is False
    assert any(
        p == f"pgbackrest verify: backup: {first}: checksum invalid 1" for p in report["problems"]
    ), report["problems"]
    assert again.code == 0, again.out + again.err
    report = again.json()
    assert report["ok"] is True and report["tables"] > 0
    # the same set restores the same rows as when up verified it
    assert report["rows_recorded_before"] == report["rows"]
    assert not stack.plan.paths.scratch_pgdata.exists()
    code, status = stack.status()
    assert code == 0, status["problems"]


def _it_rows(stack: Stack, prefix: str) -> set[str]:
    with stack.hs.connect(_leader(stack)) as conn:
        rows = conn.execute("SELECT id FROM it_rows WHERE id LIKE %s", (f"{prefix}%",))
        return {str(r[0]) for r in rows}


def _restore_fails_and_leaves_the_stack_held(stack: Stack) -> None:
    """A restore point that does not exist: PostgreSQL never reaches it and Patroni gives the
    bootstrap up. The stack must not come back as a new, empty cluster: every Patroni
    stopped, a persistent hold, `up` refusing."""
    failed = stack.run(
        "restore", "--to-name", "it_never_made", "--target", "cluster", "--yes", timeout_s=900
    )
    assert failed.code == 1, failed.out + failed.err
    assert "could not bootstrap the cluster from the repository" in failed.err, failed.err
    assert "the previous data is kept aside" in failed.err
    assert (stack.plan.paths.holds_dir / "persistent-cluster-restore.json").is_file()
    refused = stack.run("up", timeout_s=300)
    assert refused.code == 1 and "a cluster restore did not finish" in refused.err
    code, status = stack.status()
    assert code != 0
    holds = status["watcher"]["holds"]
    assert any("cluster restore did not finish" in h["sentence"] for h in holds), holds
    time.sleep(8)  # several watcher polls: the held Patroni programs stay down
    states = [
        stack.hs.supervisor.process(p.process_name).state for p in stack.hs.programs("patroni")
    ]
    assert "RUNNING" not in states, states


def test_the_whole_cluster_restored_to_a_time_before_a_mistake(stack: Stack) -> None:
    stack.ensure_scratch_table()
    with stack.hs.connect(_leader(stack)) as conn:
        conn.execute("INSERT INTO it_rows VALUES ('cluster-before', 1)")
        row = conn.execute(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        ).fetchone()
        assert row is not None
        target = f"{row[0]}+00:00"
        conn.execute("SELECT pg_sleep(1)")
        conn.execute("INSERT INTO it_rows VALUES ('cluster-after', 2)")
    timeline = max(m["timeline"] for m in stack.status()[1]["postgres"])
    # It asks first; without a yes (end of input) nothing is touched.
    asked = stack.run("restore", "--to-time", target, "--target", "cluster")
    assert asked.code == 1, asked.out + asked.err
    assert "Replace the data of every node" in asked.err
    assert _it_rows(stack, "cluster-") == {"cluster-before", "cluster-after"}

    _restore_fails_and_leaves_the_stack_held(stack)

    # Run again, to the time: it takes over the failed restore.
    result = stack.run(
        "restore", "--to-time", target, "--target", "cluster", "--yes", "--json", timeout_s=900
    )
    assert result.code == 0, result.err[-3000:]
    done = result.json()
    assert done["dcs"].endswith("keys deleted")  # etcd kept quorum: only its keys went
    # (the failed bootstrap left pg1 without a data directory: Patroni moved it away)
    assert done["set_aside"] and {a["moved_to"] for a in done["set_aside"]} <= set(done["removed"])
    assert done["backup"]
    assert not (stack.plan.paths.holds_dir / "persistent-cluster-restore.json").exists()
    assert _it_rows(stack, "cluster-") == {"cluster-before"}
    code, status = stack.status()
    assert code == 0, status["problems"]
    assert all(m["timeline"] > timeline for m in status["postgres"])
    left = [p.name for n in stack.plan.nodes for p in n.paths.root.iterdir()]
    # nothing set aside by either restore, nothing Patroni moved after its failed bootstrap
    assert not [n for n in left if ".before-restore-" in n or n.startswith("pgdata_")], left


def test_up_refuses_to_create_an_empty_cluster_over_backups(stack: Stack) -> None:
    """Every data directory gone (moved away here) while the repository holds backups: `up`
    must not initdb a new cluster; with the data back, `up` brings the same cluster up."""
    hs = stack.hs
    nodes = stack.plan.postgres_nodes
    with hs.hold(600, "integration test: data directories moved away"):
        stop_patroni_ordered(hs, NullProgress(), StopResult())
        stop_postgres_leftovers(hs)
        for node in nodes:
            node.paths.pgdata.rename(node.paths.pgdata.with_name("pgdata.it-away"))
        try:
            refused = stack.run("up", timeout_s=600)
            assert refused.code == 1, refused.out + refused.err
            assert "every node's data directory is empty" in refused.err
            assert "hastack restore --target cluster --latest" in refused.err
            assert not any((n.paths.pgdata / "PG_VERSION").exists() for n in nodes)
        finally:
            for node in nodes:
                if node.paths.pgdata.exists():
                    node.paths.pgdata.rmdir()  # empty: nothing was created in it
                node.paths.pgdata.with_name("pgdata.it-away").rename(node.paths.pgdata)
    again = stack.run("up", "--json", timeout_s=600)
    assert again.code == 0, again.out[-3000:] + again.err[-1500:]
    code, status = stack.status()
    assert code == 0, status["problems"]


def test_a_logical_dump_restores_into_the_scratch_instance(stack: Stack, open_tmp: Path) -> None:
    stack.ensure_scratch_table()
    with stack.hs.connect(_leader(stack)) as conn:
        conn.execute("INSERT INTO it_rows VALUES ('dump-row', 7) ON CONFLICT DO NOTHING")
        live = conn.execute("SELECT count(*) FROM it_rows").fetchone()
    made = stack.run("dump", "--json", timeout_s=600)
    assert made.code == 0, made.err
    dump = made.json()
    path = Path(dump["path"])
    assert path.stat().st_mode & 0o777 == 0o600 and path.stat().st_uid == 0
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.read_bytes()[:2] != b"PG"  # encrypted, not a plain custom-format dump
    listed = stack.run("dump", "list", "--json").json()["dumps"]
    assert dump["name"] in [d["name"] for d in listed]

    restored = stack.run("dump", "restore", dump["name"], "--json", timeout_s=600)
    assert restored.code == 0, restored.err
    try:
        assert restored.json()["tables"] > 0
        with stack.hs.scratch().connect() as conn:
            row = conn.execute("SELECT v FROM it_rows WHERE id = 'dump-row'").fetchone()
            count = conn.execute("SELECT count(*) FROM it_rows").fetchone()
        assert row == (7,) and count == live
        busy = stack.run("dump", "restore", dump["name"])
        assert busy.code == 1 and "a scratch instance already exists" in busy.err
    finally:
        assert stack.run("restore", "--cleanup").code == 0

    tampered = open_tmp / dump["name"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    broken = stack.run("dump", "restore", str(tampered), timeout_s=600)
    stack.run("restore", "--cleanup")
    assert broken.code == 1 and "cannot be decrypted" in broken.err, broken.err
    wrong = stack.run("dump", "restore", "/etc/passwd")
    assert wrong.code == 1 and "is not the name of a dump" in wrong.err
    cluster = stack.run("dump", "restore", dump["name"], "--target", "cluster")
    assert cluster.code == 2 and "a dump restores into scratch only" in cluster.err
