"""`hastack audit`: a live stack checked against the threat model (docs/security.md). Every
check is computed from what the stack does now, each failure comes with its fix; nothing is
changed."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from hastack.runtime.files import uid_gid
from hastack.runtime.preflight import (
    Problem,
    check_installed,
    check_programs_trusted,
    listeners,
    spec_file_problem,
)
from hastack.runtime.stack import Stack
from hastack.spec import roles
from hastack.spec.plan import StackPlan

TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class AuditReport:
    stack: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
        }


def audit(stack: Stack, spec_file: Path | None = None) -> AuditReport:
    plan = stack.plan
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("spec files", lambda: _spec_files(plan, spec_file)),
        ("installed code", lambda: _installed_code(plan)),
        ("private keys", lambda: _private_keys(plan)),
        ("state directory", lambda: _state_dir_exposure(plan)),
        ("program logs", lambda: _logs_root_only(stack)),
        ("etcd", lambda: _etcd_refuses_anonymous(plan)),
        ("superuser", lambda: _superuser_not_over_tcp(stack)),
        ("database TLS", lambda: _database_refuses_plaintext(stack)),
        ("Patroni REST", lambda: _patroni_writes_need_credentials(plan)),
        ("HAProxy stats", lambda: _stats_need_login(plan)),
        ("monitoring", lambda: _monitoring_needs_login(plan)),
        ("HTTPS edge", lambda: _edge_tls_versions(plan)),
        ("listeners", lambda: _listeners_are_the_stacks(plan)),
    ]
    return AuditReport(plan.name, tuple(_guarded(name, check) for name, check in checks))


def _verdict(name: str, failures: list[str], failed: str, passed: str, fix: str) -> Check:
    """Passed when nothing failed; the detail and the fix say only what applies."""
    if failures:
        return Check(name, False, failed.format(", ".join(failures)), fix)
    return Check(name, True, passed)


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check that cannot even run is a failed check, with the reason (an audit of a stack
    that is down fails, it does not pass)."""
    try:
        return check()
    except Exception as exc:
        return Check(name, False, f"could not check: {type(exc).__name__}: {exc}"[:300])


# --- files ---------------------------------------------------------------------------------


def _spec_files(plan: StackPlan, spec_file: Path | None) -> Check:
    paths = [plan.paths.applied_spec]
    if spec_file is not None and spec_file.resolve() != plan.paths.applied_spec:
        paths.append(spec_file)
    problems = [p for p in (spec_file_problem(path) for path in paths) if p is not None]
    return _from_problems(
        "spec files only root can change", problems, ", ".join(str(p) for p in paths)
    )


def _installed_code(plan: StackPlan) -> Check:
    problems = check_installed(plan) + check_programs_trusted(plan)
    return _from_problems(
        "code root runs is root's alone", problems, "hastack's venv and every binaries.* program"
    )


def _from_problems(name: str, problems: list[Problem], passed: str) -> Check:
    """A check made of preflight's problems: each says what is wrong and how to fix it."""
    if problems:
        return Check(
            name, False, "; ".join(p.what for p in problems), "; ".join(p.fix for p in problems)
        )
    return Check(name, True, passed)


def private_files(plan: StackPlan) -> list[tuple[Path, str]]:
    """Every secret or private key of the stack, with the user that must own it."""
    paths = plan.paths
    files = [(p, "root") for p in sorted(paths.secrets_dir.glob("*"))]
    files += [(paths.ca_key, "root"), (paths.client_key, "root"), (paths.client_cert, "root")]
    files += [(n.paths.tls_key, n.user) for n in plan.nodes]
    files.append((paths.pgbouncer_tls_key, plan.service_users["pgbouncer"]))
    files.append((paths.haproxy_stats_pem, plan.service_users["haproxy"]))
    if plan.app_instances:
        files.append((paths.haproxy_pem, plan.service_users["haproxy"]))
    return files


def _private_keys(plan: StackPlan) -> Check:
    files = private_files(plan)
    bad = []
    for path, owner in files:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if not stat.S_ISREG(st.st_mode) or mode & 0o077 or st.st_uid != uid_gid(owner)[0]:
            bad.append((path, owner, mode))
    detail = ", ".join(f"{p} ({m:04o}, owner {owner} expected)" for p, owner, m in bad)
    fix = "; ".join(f"chown {o} {p} && chmod 0600 {p}" for p, o, _ in bad)
    return Check(
        "secrets and private keys: 0600, their owner's",
        not bad,
        detail or f"{len(files)} files",
        fix,
    )


@dataclass(frozen=True)
class Entry:
    """What `ls -l` says of one path under the state directory."""

    relative: str
    mode: int
    is_dir: bool


PUBLIC = ("hastack-stack.json", "tls/ca.pem")
"""Meant to be read by anyone: the stack marker and the CA clients trust."""


def readable_by_others(entries: Iterable[Entry]) -> list[str]:
    """Files another local user can read: o+r on the file and o+x on every directory down to
    it (the state directory itself is `.`). Pure: the facts come from `_walk`."""
    by_path = {e.relative: e for e in entries}

    def reachable(relative: str) -> bool:
        parts = Path(relative).parts
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth]) or "."
            entry = by_path.get(parent)
            if entry is None or not entry.mode & stat.S_IXOTH:
                return False
        return True

    return sorted(
        e.relative
        for e in by_path.values()
        if not e.is_dir and e.mode & stat.S_IROTH and reachable(e.relative)
    )


def _walk(root: Path) -> list[Entry]:
    entries = [Entry(".", stat.S_IMODE(root.lstat().st_mode), True)]
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            entries.append(Entry(rel, stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode)))
    return entries


def _state_dir_exposure(plan: StackPlan) -> Check:
    exposed = [
        p
        for p in readable_by_others(_walk(plan.paths.state_dir))
        if p not in PUBLIC and not p.startswith("drills/")
    ]
    state = plan.paths.state_dir
    return Check(
        "nothing under the state directory readable by other users (but the CA, the marker, "
        "drill reports)",
        not exposed,
        ", ".join(exposed[:10]) + (f" and {len(exposed) - 10} more" if len(exposed) > 10 else "")
        or str(state),
        "; ".join(f"chmod o-r {state / p}" for p in exposed[:10]),
    )


def _logs_root_only(stack: Stack) -> Check:
    logs = stack.plan.paths.logs_dir
    st = logs.lstat()
    outside = [p.name for p in stack.programs() if p.log_file.parent != logs]
    ok = st.st_uid == 0 and not stat.S_IMODE(st.st_mode) & 0o077 and not outside
    return Check(
        "program logs in a root-only directory (supervisord opens them as root)",
        ok,
        f"{logs} {stat.S_IMODE(st.st_mode):04o} uid {st.st_uid}"
        + (f"; logs elsewhere: {', '.join(outside)}" if outside else ""),
        "" if ok else f"chown root {logs} && chmod 0700 {logs}; `hastack up` moves the logs",
    )


# --- network -------------------------------------------------------------------------------


def _etcd_refuses_anonymous(plan: StackPlan) -> Check:
    accepted = []
    ca = str(plan.paths.ca_cert)
    for url in plan.etcd_client_urls:
        # TLS without a client certificate, then plain HTTP: both must be refused.
        for target, verify in ((url, ca), (url.replace("https:", "http:"), ca)):
            try:
                httpx.post(
                    f"{target}/v3/kv/range", json={"key": "eA=="}, timeout=TIMEOUT_S, verify=verify
                )
            except httpx.TransportError:
                continue
            accepted.append(target)
    return _verdict(
        "etcd refuses clients without the stack's certificate",
        accepted,
        "answered without a client certificate: {}",
        f"{len(plan.etcd_client_urls)} members refused TLS without a certificate, and plain HTTP",
        "run `hastack up` (etcd runs with --client-cert-auth)",
    )


def _superuser_not_over_tcp(stack: Stack) -> Check:
    plan = stack.plan
    nodes = {n.name: (n.address, plan.spec.postgres.port) for n in plan.postgres_nodes}
    admitted = _admitted(
        nodes,
        ("pg_hba.conf rejects",),
        user=roles.SUPERUSER,
        password=stack.secrets.postgres_password,
        dbname=plan.spec.postgres.database,
        sslmode="prefer",
    )
    return _verdict(
        "the PostgreSQL superuser only through each node's Unix socket",
        admitted,
        "admitted over TCP on {}",
        f"pg_hba rejected it on {len(plan.postgres_nodes)} nodes",
        "run `hastack up` (pg_hba: host all postgres all reject)",
    )


def _admitted(
    ends: dict[str, tuple[str, int]], refusals: tuple[str, ...], **login: Any
) -> list[str]:
    """The endpoints (by name) that let `login` in; each other one must refuse it with one of
    `refusals`: any other failure (down?) raises, a check that could not run."""
    admitted = []
    for name, (host, port) in ends.items():
        try:
            psycopg.connect(host=host, port=port, connect_timeout=int(TIMEOUT_S), **login).close()
            admitted.append(name)
        except psycopg.OperationalError as exc:
            if not any(refusal in str(exc) for refusal in refusals):
                raise
    return admitted


PLAINTEXT_REFUSALS = ("no encryption", "SSL required")
"""How PostgreSQL (pg_hba has no line for a client without TLS) and PgBouncer
(client_tls_sslmode = require) refuse a client that does not ask for TLS."""


def database_endpoints(plan: StackPlan) -> dict[str, tuple[str, int]]:
    """Every TCP endpoint an application could reach the database on, by name."""
    ends = {n.name: (n.address, plan.spec.postgres.port) for n in plan.postgres_nodes}
    ends["haproxy read-write"] = (plan.services_address, plan.spec.haproxy.rw_port)
    ends["haproxy read-only"] = (plan.services_address, plan.spec.haproxy.ro_port)
    ends["pgbouncer"] = (plan.services_address, plan.spec.pgbouncer.port)
    return ends


def _database_refuses_plaintext(stack: Stack) -> Check:
    plan = stack.plan
    ends = database_endpoints(plan)
    admitted = _admitted(
        ends,
        PLAINTEXT_REFUSALS,
        user=stack.secrets.app_login,
        password=stack.secrets.app_password,
        dbname=plan.spec.postgres.database,
        sslmode="disable",
    )
    return _verdict(
        "PostgreSQL and PgBouncer refuse clients without TLS",
        admitted,
        "a client without TLS was let in on {}",
        f"{len(ends)} endpoints refused a client without TLS",
        "set postgres.require_tls: true (the default) in the spec and run `hastack up`",
    )


def _patroni_writes_need_credentials(plan: StackPlan) -> Check:
    open_ = []
    ca = str(plan.paths.ca_cert)
    for node in plan.postgres_nodes:
        base = f"{node.address}:{plan.spec.patroni.rest_port}"
        write = httpx.post(f"https://{base}/switchover", json={}, timeout=TIMEOUT_S, verify=ca)
        if write.status_code != 401:
            open_.append(f"{node.name} (a write without credentials)")
        if _answers_plain_http(f"http://{base}/patroni"):
            open_.append(f"{node.name} (plain HTTP)")
    return _verdict(
        "Patroni's REST API: HTTPS only, writes need its credentials",
        open_,
        "accepted on {}",
        "every node refused plain HTTP and answered 401 to a write without credentials",
        "run `hastack up` (restapi.certfile and restapi.authentication)",
    )


def _answers_plain_http(url: str) -> bool:
    try:
        httpx.get(url, timeout=TIMEOUT_S)
    except httpx.TransportError:
        return False  # a TLS listener does not answer plain HTTP
    return True


def _serves_plain_http(url: str) -> bool:
    """Go's TLS servers answer a plain HTTP request with a 400 that says to use HTTPS:
    refused, not served."""
    try:
        answer = httpx.get(url, timeout=TIMEOUT_S)
    except httpx.TransportError:
        return False
    return not (answer.status_code == 400 and "HTTPS server" in answer.text)


def _stats_need_login(plan: StackPlan) -> Check:
    base = f"https://{plan.services_address}:{plan.spec.haproxy.stats_port}"
    ca = str(plan.paths.ca_cert)
    open_ = [
        p
        for p in ("/", "/metrics")
        if httpx.get(base + p, timeout=TIMEOUT_S, verify=ca).status_code != 401
    ]
    if _answers_plain_http(base.replace("https:", "http:") + "/"):
        open_.append("plain HTTP")
    return _verdict(
        "HAProxy's stats page and /metrics: HTTPS only, behind the stats login",
        open_,
        "served without a login or TLS: {}",
        "plain HTTP refused, 401 without a login",
        "run `hastack up`",
    )


def _monitoring_needs_login(plan: StackPlan) -> Check:
    name = "Prometheus, Alertmanager, the dashboard: HTTPS only, behind the monitoring login"
    if not plan.monitoring_enabled:
        return Check(name, True, "monitoring is off")
    ca = str(plan.paths.ca_cert)
    open_ = []
    for what, base, path in (
        ("Prometheus", plan.prometheus_url, "/api/v2/status"),
        ("Alertmanager", plan.alertmanager_url, "/api/v2/status"),
        ("the dashboard", plan.dashboard_url, "/api/state"),
    ):
        # Alertmanager's API could silence every alert; Prometheus' shows the whole topology.
        if httpx.get(f"{base}{path}", timeout=TIMEOUT_S, verify=ca).status_code != 401:
            open_.append(f"{what} without a login")
        if _serves_plain_http(base.replace("https:", "http:") + "/"):
            open_.append(f"{what} in plain HTTP")
    return _verdict(
        name,
        open_,
        "served: {}",
        "plain HTTP refused, 401 without a login",
        "run `hastack up` (their --web.config.file, the dashboard's login)",
    )


def _edge_tls_versions(plan: StackPlan) -> Check:
    if not plan.app_instances:
        return Check("HTTPS edge: TLS 1.2 or later only", True, "no HTTP tier")
    address, port = plan.services_address, plan.spec.http.https_port
    # A client that offers only TLS 1.0/1.1 (verified to complete against a server that
    # allows them), then one that offers only 1.2.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    accepted_old = _handshake(old, address, port)
    current = ssl.create_default_context(cafile=str(plan.paths.ca_cert))
    current.check_hostname = False
    current.minimum_version = ssl.TLSVersion.TLSv1_2
    current.maximum_version = ssl.TLSVersion.TLSv1_2
    ok = not accepted_old and _handshake(current, address, port)
    return Check(
        "HTTPS edge: TLS 1.2 or later only",
        ok,
        "TLS 1.0/1.1 accepted" if accepted_old else "TLS 1.0/1.1 refused, TLS 1.2 accepted",
        "" if ok else "run `hastack up` (ssl-min-ver TLSv1.2)",
    )


def _handshake(context: ssl.SSLContext, address: str, port: int) -> bool:
    try:
        with (
            socket.create_connection((address, port), timeout=TIMEOUT_S) as sock,
            context.wrap_socket(sock, server_hostname=address),
        ):
            return True
    except (ssl.SSLError, OSError):
        return False


def _listeners_are_the_stacks(plan: StackPlan) -> Check:
    subnet = ipaddress.ip_network(plan.spec.network.subnet)
    ours = set(plan.all_users)
    foreign = [
        f"{lst.address}:{lst.port} ({lst.process}, user {lst.user}, pid {lst.pid})"
        for lst in listeners()
        if _in(lst.address, subnet) and lst.user not in ours
    ]
    return Check(
        "every port on the stack's addresses belongs to the stack",
        not foreign,
        "; ".join(foreign) or f"every listener on {subnet} runs as one of the stack's users",
        "" if not foreign else "stop those processes: they can pose as a part of the stack",
    )


def _in(address: str, subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(address) in subnet
    except ValueError:
        return False
