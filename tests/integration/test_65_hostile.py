"""A hostile local user and a compromised service account against the running stack: every
attempt must fail, for the reason docs/security.md names."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import pwd
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from hastack.ops.audit import database_endpoints
from hastack.render.files import render_stack
from hastack.render.pgbackrest import archive_command
from hastack.spec import roles
from tests.integration.conftest import Stack
from tests.integration.helpers import wait_until

PYTHON = "/usr/bin/python3"  # readable by every user, unlike the test venv


def as_user(user: str, code: str, *args: str) -> str:
    """Run Python as `user` (its own group, no supplementary groups); its stdout."""
    proc = subprocess.run(
        [PYTHON, "-c", code, *args],
        user=user,
        group=pwd.getpwnam(user).pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout.strip()


@pytest.fixture
def decoys() -> Iterator[Path]:
    """A root-only directory of files an attacker would like root to write to."""
    path = Path(tempfile.mkdtemp(prefix="hastack-decoy-"))
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


TRY_SYMLINK = """
import errno, os, sys
try:
    os.symlink(sys.argv[1], sys.argv[2])
    print("created")
except OSError as exc:
    print(errno.errorcode[exc.errno])
"""


def test_no_service_user_can_plant_a_symlink_where_supervisord_opens_logs(
    stack: Stack, decoys: Path
) -> None:
    """supervisord (root) opens every program's log at each spawn: they live in a root-only
    directory, so no service user can point one elsewhere."""
    plan = stack.plan
    users = sorted({*plan.service_users.values(), *(n.user for n in plan.nodes)})
    for user in users:
        link = plan.paths.program_log("app1")
        assert as_user(user, TRY_SYMLINK, str(decoys / "cron"), str(link)) == "EACCES", user
    assert not (decoys / "cron").exists()


SWAP_FOR_SYMLINK = """
import os, sys
target, path = sys.argv[1], sys.argv[2]
tmp = path + ".swap"
os.symlink(target, tmp)
os.replace(tmp, path)
print("swapped")
"""


def test_root_replaces_a_planted_symlink_instead_of_writing_through_it(
    stack: Stack, decoys: Path
) -> None:
    """Every config root writes into a directory its service user owns is swapped, by that
    user, for a symlink to a root-only file; `up` must rewrite the configs without touching
    the decoys, and leave regular files behind."""
    plan = stack.plan
    planted: list[tuple[Path, Path]] = []
    for rendered in render_stack(plan, stack.hs.secrets):
        parent = rendered.path.parent.stat()
        if parent.st_uid == 0:
            continue  # only root can write there: nothing to plant
        owner = rendered.path.parent.owner()
        decoy = decoys / f"{len(planted)}-{rendered.path.name}"
        decoy.write_text("decoy\n")
        decoy.chmod(0o600)
        assert as_user(owner, SWAP_FOR_SYMLINK, str(decoy), str(rendered.path)) == "swapped"
        planted.append((rendered.path, decoy))
    assert len(planted) >= 5, planted  # patroni.yml of every node, the services' configs

    result = stack.run("up", "--json")
    assert result.code == 0, result.err
    for path, decoy in planted:
        assert decoy.read_text() == "decoy\n", f"root wrote through {path}"
        st = decoy.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600), decoy
        assert not path.is_symlink() and path.is_file(), path
    code, status = stack.status()
    assert code == 0 and status["healthy"], status["problems"]


def test_hastack_logs_refuses_a_symlink_a_node_user_planted(stack: Stack, decoys: Path) -> None:
    """PostgreSQL's own logs live in the node user's directory; `hastack logs` (root) reads
    them without following a symlink there."""
    node = stack.plan.node("pg1")
    secret = decoys / "secret"
    secret.write_text("TOPSECRET\n")
    secret.chmod(0o600)
    future = time.time() + 3600  # the newest log by far: the one `hastack logs` would pick
    os.utime(secret, (future, future))
    link = node.paths.log_dir / "postgresql-Zzz.log"
    assert as_user(node.user, TRY_SYMLINK, str(secret), str(link)) == "created"
    try:
        result = stack.run("logs", "pg1", "postgres")
        assert result.code == 1
        assert "refusing to use" in result.err and "symlink" in result.err
        assert "TOPSECRET" not in result.out + result.err
    finally:
        link.unlink()


LIST_READABLE = """
import json, os, sys
readable = []
for folder, _dirs, files in os.walk(sys.argv[1]):
    for name in files:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as handle:
                handle.read(1)
            readable.append(os.path.relpath(path, sys.argv[1]))
        except OSError:
            pass
print(json.dumps(readable))
"""


def test_another_local_user_can_read_nothing_but_the_ca_and_drill_reports(
    stack: Stack,
) -> None:
    state = stack.plan.paths.state_dir
    readable = json.loads(as_user("nobody", LIST_READABLE, str(state)))
    public = {"hastack-stack.json", os.path.relpath(stack.plan.paths.ca_cert, state)}
    unexpected = [p for p in readable if p not in public and not p.startswith("drills/")]
    assert unexpected == []


def test_etcd_refuses_clients_without_the_stacks_certificate(stack: Stack) -> None:
    """Without a client certificate from the stack's CA, nobody can write Patroni's keys
    (its configuration: archive_command runs as the node's user; the leader key)."""
    put = {"key": base64.b64encode(b"/hastack/x").decode(), "value": "eQ=="}
    ca = str(stack.plan.paths.ca_cert)
    for url in stack.plan.etcd_client_urls:
        with pytest.raises(httpx.TransportError, match=r"(?i)certificate"):
            httpx.post(f"{url}/v3/kv/put", json=put, verify=ca)
        plain = url.replace("https://", "http://")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # not spoken to
            httpx.post(f"{plain}/v3/kv/put", json=put)
    assert stack.hs.etcd().get("/hastack/x") is None


def test_patroni_speaks_only_https_and_refuses_writes_without_its_credentials(
    stack: Stack,
) -> None:
    node = stack.plan.node("pg1")
    ca = str(stack.plan.paths.ca_cert)
    base = f"https://{node.address}:{stack.plan.spec.patroni.rest_port}"
    for method, path in (("POST", "/switchover"), ("PATCH", "/config"), ("POST", "/restart")):
        response = httpx.request(method, f"{base}{path}", json={}, verify=ca)
        assert response.status_code == 401, (method, path, response.text)
    assert httpx.get(f"{base}/patroni", verify=ca).status_code == 200  # reads: open to probes
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # not spoken to
        httpx.get(base.replace("https://", "http://") + "/patroni")


def test_the_superuser_password_alone_does_not_open_postgresql_over_tcp(stack: Stack) -> None:
    node = stack.plan.node("pg1")
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
        psycopg.connect(
            host=node.address,
            port=stack.plan.spec.postgres.port,
            dbname=stack.plan.spec.postgres.database,
            user=roles.SUPERUSER,
            password=stack.hs.secrets.postgres_password,
            sslmode="disable",
        )
    with stack.hs.connect("pg1") as conn:  # root, through the node's socket
        assert conn.execute("SELECT current_user").fetchone() == (roles.SUPERUSER,)


def test_database_clients_without_tls_are_refused_everywhere(stack: Stack) -> None:
    """pg_hba has only hostssl lines for TCP clients; PgBouncer requires TLS from clients."""
    ends = database_endpoints(stack.plan)
    for name, (host, port) in ends.items():
        refusal = "SSL required" if name == "pgbouncer" else r"pg_hba\.conf entry .* no encryption"
        with pytest.raises(psycopg.OperationalError, match=refusal):
            psycopg.connect(
                host=host,
                port=port,
                dbname=stack.plan.spec.postgres.database,
                user=stack.hs.secrets.app_login,
                password=stack.hs.secrets.app_password,
                sslmode="disable",
            )


def test_audit_fails_on_a_plaintext_client_and_says_how_to_fix_it(stack: Stack) -> None:
    """PgBouncer let clients in without TLS (as with postgres.require_tls: false)."""
    admin = stack.hs.pgbouncer()
    admin.command("SET client_tls_sslmode = 'allow'", 5)
    try:
        check = _audit(stack)["PostgreSQL and PgBouncer refuse clients without TLS"]
        assert not check["ok"] and "let in on pgbouncer" in str(check["detail"])
        assert "postgres.require_tls: true" in str(check["fix"])
    finally:
        admin.command("SET client_tls_sslmode = 'require'", 5)
    assert _audit(stack)["PostgreSQL and PgBouncer refuse clients without TLS"]["ok"]


def _audit(stack: Stack) -> dict[str, dict[str, object]]:
    result = stack.run("audit", "--json")
    report = result.json()
    assert result.code == (0 if report["passed"] else 1)
    return {c["name"]: c for c in report["checks"]}


def test_audit_passes_on_the_running_stack(stack: Stack) -> None:
    checks = _audit(stack)
    assert len(checks) == 13
    assert [name for name, c in checks.items() if not c["ok"]] == []


def test_audit_fails_on_a_world_readable_secret_and_says_how_to_fix_it(stack: Stack) -> None:
    secret = stack.plan.paths.secrets_dir / "redis_password"
    secret.chmod(0o644)
    try:
        check = _audit(stack)["secrets and private keys: 0600, their owner's"]
        assert not check["ok"] and str(secret) in str(check["detail"])
        assert f"chmod 0600 {secret}" in str(check["fix"])
    finally:
        secret.chmod(0o600)


def test_audit_fails_on_a_foreign_listener_on_the_stacks_addresses(stack: Stack) -> None:
    """Anything else listening on the stack's subnet could pose as one of its parts."""
    address = str(next(iter(ipaddress.ip_network(stack.plan.spec.network.subnet).hosts())))
    address = address.rsplit(".", 1)[0] + ".77"
    server = subprocess.Popen(
        [PYTHON, "-m", "http.server", "--bind", address, "18077"],
        user="nobody",
        group=pwd.getpwnam("nobody").pw_gid,
        extra_groups=[],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _listening(address, 18077), 10)
        check = _audit(stack)["every port on the stack's addresses belongs to the stack"]
        assert not check["ok"] and f"{address}:18077" in str(check["detail"])
        assert "user nobody" in str(check["detail"])
    finally:
        server.terminate()
        server.wait()


def _listening(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
    except OSError:
        return False
    return True


def test_dangerous_parameters_hold_even_when_patronis_dynamic_config_is_changed(
    stack: Stack,
) -> None:
    """Should someone get past etcd's certificates or Patroni's password, the parameters that
    run code as the node's user or make commits losable are pinned in each node's own file."""
    leader = stack.status()[1]["leader_key"]
    patroni = stack.hs.patroni(leader)
    hostile = {
        "archive_mode": "on",
        "archive_command": "touch /tmp/hastack-pwned",
        "session_preload_libraries": "auto_explain",
        "fsync": "off",
    }
    patroni.patch_config({"postgresql": {"parameters": hostile}})
    try:
        # Patroni applies a dynamic change at its next loop (loop_wait 2 s); give it three.
        time.sleep(3 * stack.plan.spec.patroni.loop_wait_s + 1)
        for node in stack.plan.postgres_nodes:
            with stack.hs.connect(node.name) as conn:
                shown = {
                    name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                    for name in hostile
                }
            # The spec's own values: WAL archiving into the backup repository.
            assert shown == {
                "archive_mode": "on",
                "archive_command": archive_command(stack.plan, node),
                "session_preload_libraries": "",
                "fsync": "on",
            }, node.name
    finally:
        patroni.patch_config({"postgresql": {"parameters": dict.fromkeys(hostile)}})
    assert not Path("/tmp/hastack-pwned").exists()


def test_the_urls_hastack_env_prints_use_verified_tls_end_to_end(stack: Stack) -> None:
    """Client -> PgBouncer and client -> HAProxy -> PostgreSQL with verify-full against the
    stack's CA; PgBouncer -> PostgreSQL over TLS as well."""
    urls = stack.hs.urls()
    for name in ("DATABASE_URL", "DATABASE_URL_RO", "DATABASE_URL_DIRECT"):
        assert "sslmode=verify-full" in urls[name], name
        with psycopg.connect(urls[name]) as conn:
            assert conn.pgconn.ssl_in_use, name
            row = conn.execute(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()
            assert row is not None and row[0] is True and row[1] in ("TLSv1.2", "TLSv1.3"), name
