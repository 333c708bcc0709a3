"""The shared stack, up for real: roles, routing, users, secrets, idempotence."""

from __future__ import annotations

import ssl
import stat
import subprocess
import sys
import uuid

import httpx
import psutil
import psycopg
import pytest
import redis as redis_lib

from hastack.spec import roles
from hastack.spec.secrets import Secrets
from tests.integration.conftest import Stack
from tests.integration.helpers import wait_until


def secrets_of(stack: Stack) -> Secrets:
    return stack.hs.secrets


def env_of(stack: Stack) -> dict[str, str]:
    result = stack.run("env", "--json")
    assert result.code == 0, result.err
    env: dict[str, str] = result.json()
    return env


def superuser(stack: Stack, node: str, dbname: str) -> psycopg.Connection[tuple[object, ...]]:
    return stack.hs.connect(node, dbname)


def test_up_reached_every_milestone(stack: Stack) -> None:
    ready = stack.up["ready_at_s"]
    assert list(ready) == [
        "etcd_quorum",
        "leader",
        "replicas",
        "haproxy",
        "pgbouncer",
        "redis",
        "app",
        "backup",
        "monitoring",
    ]
    assert stack.up["created_users"]  # a fresh stack: its users were created


def test_status_shows_leader_sync_standby_and_replica_streaming(stack: Stack) -> None:
    code, status = stack.status()
    assert code == 0, status["problems"]
    assert status["healthy"] is True
    members = {m["name"]: m for m in status["postgres"]}
    assert sorted(m["role"] for m in members.values()) == ["leader", "replica", "sync_standby"]
    for m in members.values():
        assert m["state"] == ("running" if m["role"] == "leader" else "streaming")
        assert m["timeline"] >= 1 and m["pid"] > 0
        assert m["host"].startswith("127.0.213.")
    assert status["leader_key"] == next(n for n, m in members.items() if m["role"] == "leader")
    etcd = status["etcd"]
    assert len(etcd) == 3 and all(e["healthy"] for e in etcd)
    assert sum(e["leader"] for e in etcd) == 1
    assert status["pgbouncer"]["ok"] and status["redis"]["ok"]
    up = {(s["backend"], s["server"]) for s in status["haproxy"]["servers"] if s["up"]}
    leader = status["leader_key"]
    assert ("pg_primary", leader) in up
    assert len([b for b, _ in up if b == "pg_replicas"]) == 2


def test_status_text_names_every_component(stack: Stack) -> None:
    result = stack.run("status")
    assert result.code == 0
    for word in ("healthy", "postgres", "etcd", "haproxy", "pgbouncer", "redis", "sync_standby"):
        assert word in result.out


def test_servers_run_as_their_own_users_never_as_root(stack: Stack) -> None:
    plan = stack.plan
    expected = {
        **{n.user: {"etcd", "patroni", "postgres"} for n in plan.postgres_nodes},
        plan.service_users["haproxy"]: {"haproxy"},
        plan.service_users["pgbouncer"]: {"pgbouncer"},
        plan.service_users["redis"]: {"redis-server"},
    }
    seen: dict[str, set[str]] = {user: set() for user in expected}
    for proc in psutil.process_iter(["username", "name", "cmdline"]):
        user = proc.info["username"]
        if user in seen:
            cmd = " ".join(proc.info["cmdline"] or [])
            name = "patroni" if "patroni" in cmd else proc.info["name"]
            seen[user].add(name)
        elif user == "root":
            cmd = " ".join(proc.info["cmdline"] or [])
            if str(plan.paths.state_dir) in cmd:
                # Only supervisord and the fencing watcher run as root, and neither listens.
                assert "supervisord" in cmd or "hastack.runtime.watcher" in cmd, cmd
                listening = [c for c in proc.net_connections() if c.status == psutil.CONN_LISTEN]
                assert listening == [], cmd
    for user, names in expected.items():
        assert names <= seen[user], (user, seen[user])


def test_a_row_written_through_database_url_is_read_through_the_replicas(stack: Stack) -> None:
    env = env_of(stack)
    stack.ensure_scratch_table()
    marker = uuid.uuid4().hex
    # prepare_threshold=None: PgBouncer's transaction pooling cannot keep prepared statements.
    with psycopg.connect(env["DATABASE_URL"], prepare_threshold=None) as conn:
        conn.execute("INSERT INTO it_rows VALUES (%s, 1)", (marker,))
    with psycopg.connect(env["DATABASE_URL_RO"], prepare_threshold=None, autocommit=True) as ro:
        assert ro.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        found = wait_until(
            lambda: ro.execute("SELECT v FROM it_rows WHERE id = %s", (marker,)).fetchone(), 10
        )
        assert found == (1,)
    with psycopg.connect(env["DATABASE_URL_DIRECT"]) as direct:
        assert direct.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)


def test_app_role_has_dml_only_and_readonly_cannot_write(stack: Stack) -> None:
    env = env_of(stack)
    with psycopg.connect(env["DATABASE_URL_DIRECT"]) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE app_may_not (id int)")
        conn.rollback()
        owner = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE r.rolname = current_user"
        ).fetchone()
        assert owner == (0,)
    leader = stack.status()[1]["leader_key"]
    node = stack.plan.node(leader)
    with (
        psycopg.connect(
            host=node.address,
            port=stack.plan.spec.postgres.port,
            dbname=stack.plan.spec.postgres.database,
            user=roles.READONLY,
            password=secrets_of(stack).readonly_password,
        ) as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("INSERT INTO it_rows VALUES ('x', 1)")


def test_monitor_role_sees_replication_but_no_rows(stack: Stack) -> None:
    """The role exporters use: pg_monitor's statistics, read-only, no application data."""
    stack.ensure_scratch_table()
    leader = stack.plan.node(stack.status()[1]["leader_key"])
    with psycopg.connect(
        host=leader.address,
        port=stack.plan.spec.postgres.port,
        dbname=stack.plan.spec.postgres.database,
        user=roles.MONITOR,
        password=secrets_of(stack).monitor_password,
        sslmode="verify-full",
        sslrootcert=str(stack.plan.paths.ca_cert),
    ) as conn:
        standbys = conn.execute(
            "SELECT application_name, state FROM pg_stat_replication ORDER BY 1"
        ).fetchall()
        assert len(standbys) == 2 and all(state == "streaming" for _, state in standbys)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM it_rows")


def test_only_scram_authentication(stack: Stack) -> None:
    leader = stack.status()[1]["leader_key"]
    with superuser(stack, leader, "postgres") as conn:
        rows = conn.execute(
            "SELECT type, user_name, auth_method FROM pg_hba_file_rules WHERE error IS NULL"
        ).fetchall()
        # SCRAM everywhere; the superuser only through the socket.
        assert {r[2] for r in rows} == {"scram-sha-256", "reject"}
        assert [r[:2] for r in rows if r[2] == "reject"] == [("host", ["postgres"])]
        hashes = conn.execute(
            "SELECT rolname FROM pg_authid WHERE rolpassword IS NOT NULL "
            "AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'"
        ).fetchall()
        assert hashes == []


def test_env_is_shell_exportable(stack: Stack) -> None:
    cli = f"{sys.executable} -m hastack -c {stack.spec}"
    cmd = (
        f'eval "$({cli} env)"; '
        'test -n "$DATABASE_URL" && test -n "$DATABASE_URL_RO" && '
        'test -n "$DATABASE_URL_DIRECT" && echo "$REDIS_URL"'
    )
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("redis://:")


def test_second_up_changes_nothing_and_says_so(stack: Stack) -> None:
    result = stack.run("up")
    assert result.code == 0, result.out + result.err
    assert "was already up: nothing changed" in result.out
    again = stack.run("up", "--json")
    assert again.json()["up"]["nothing_changed"] is True


def test_secrets_are_private_and_shown_only_on_request(stack: Stack) -> None:
    secrets_dir = stack.plan.paths.secrets_dir
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    for path in secrets_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.stat().st_uid == 0
    shown = stack.run("secrets", "show", "redis_password")
    assert shown.code == 0
    assert shown.out.strip() == secrets_of(stack).redis_password
    up_text = stack.run("up").out
    assert secrets_of(stack).app_password not in up_text


def test_haproxy_stats_need_the_generated_credentials_over_https(stack: Stack) -> None:
    base = f"https://{stack.plan.services_address}:{stack.plan.spec.haproxy.stats_port}"
    with httpx.Client(verify=ssl.create_default_context(cafile=stack.plan.paths.ca_cert)) as c:
        assert c.get(f"{base}/").status_code == 401
        auth = (roles.HAPROXY_STATS, secrets_of(stack).haproxy_stats_password)
        assert c.get(f"{base}/", auth=auth).status_code == 200
        assert c.get(f"{base}/metrics").status_code == 401  # the topology is not public
        metrics = c.get(f"{base}/metrics", auth=auth)
        assert metrics.status_code == 200 and "haproxy_backend_status" in metrics.text
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # the login never in clear
        httpx.get(base.replace("https:", "http:") + "/")


def test_logs_of_each_component(stack: Stack) -> None:
    assert "Lock owner" in stack.run("logs", "pg1", "-n", "200").out
    assert stack.run("logs", "pg1", "etcd", "-n", "5").code == 0
    assert stack.run("logs", "pg2", "postgres", "-n", "5").code == 0
    assert stack.run("logs", "haproxy", "-n", "5").code == 0
    unknown = stack.run("logs", "pg9")
    assert unknown.code == 1 and "no node named 'pg9'" in unknown.err


def test_redis_has_password_memory_cap_and_aof(stack: Stack) -> None:
    _, status = stack.status()
    redis = status["redis"]
    assert redis["maxmemory_bytes"] == 64 * 1024 * 1024
    assert redis["maxmemory_policy"] == "allkeys-lru"
    assert redis["aof_enabled"] is True
    client = redis_lib.Redis(host=stack.plan.services_address, port=stack.plan.spec.redis.port)
    with pytest.raises(redis_lib.AuthenticationError):
        client.ping()


def test_up_applies_a_changed_spec_to_the_running_stack(stack: Stack) -> None:
    original = stack.spec.read_text()
    stack.spec.write_text(
        original + "patroni:\n  ttl_s: 25\nredis:\n  maxmemory_mb: 32\n"
        "haproxy:\n  timeout_client_s: 900\n"
    )
    try:
        result = stack.run("up", "--json")
        assert result.code == 0, result.err
        up = result.json()["up"]
        assert up["dcs_patch"] == {"ttl": 25}
        assert {"haproxy", "redis", "pg1-patroni"} <= set(up["reloaded"])
        assert up["started"] == []
        status = result.json()["status"]
        assert status["healthy"] and status["redis"]["maxmemory_bytes"] == 32 * 1024 * 1024
    finally:
        stack.spec.write_text(original)
    restored = stack.run("up", "--json")
    assert restored.code == 0 and restored.json()["up"]["dcs_patch"] == {"ttl": 20}
