"""What the container targets (swarm, compose) put into containers: the system users with
fixed uids, the state directory skeleton, and every file a program reads, at the path the
local stack has it. Pure.

One source of truth: the files are those of `render_stack` (the local stack's own config
files) plus the certificates `ensure_node_tls` makes locally, asked for by the same names
and addresses (`certificates`): with host networking each container keeps the plan's
loopback address, so no name in any certificate or config changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hastack.errors import HastackError
from hastack.render.files import render_stack
from hastack.render.pgbackrest import BACKUP_CERT_NAME, PGBACKREST_WORK_DIRS
from hastack.render.targets import CertRequest, IssuedCert, StackMaterial
from hastack.spec.model import BinariesSpec
from hastack.spec.plan import StackPlan
from hastack.spec.secrets import INITIAL_VALUES, SECRET_PURPOSES, Secrets

UID_BASE = 30000
"""Users in the image get fixed uids (not useradd's next free one), so that the owner of a
file inside a named volume stays the same across image builds. Far from Debian's system
range (100-999), where the local stack's users live, so a container's process is never
mistaken for a local stack's on this machine (iptables --uid-owner, ps)."""

SERVICE_UID_OFFSETS = {
    "haproxy": 1,
    "pgbouncer": 2,
    "redis": 3,
    "app": 4,
    "backup": 5,
    "monitor": 6,
}
"""Fixed per service name: enabling backup or monitoring never renumbers another user."""

NODE_UID_OFFSET = 100
"""Node N (pg1 is 1) gets UID_BASE + NODE_UID_OFFSET + N."""

PUBLIC_MODE = 0o644
PRIVATE_MODE = 0o600

CLIENT_CERT = "hastack-client"
"""hastack's own client certificate (the CLI and the watcher, to etcd); mounted nowhere."""

NOT_SECRET = {*INITIAL_VALUES, "app_login"}
"""Fields of Secrets that are names or flags, not secrets."""


@dataclass(frozen=True)
class SystemUser:
    name: str
    uid: int
    home: Path


@dataclass(frozen=True)
class MountedFile:
    """One file inside the containers: a Docker secret when it holds a password or a key,
    else a Docker config."""

    key: str
    """The Docker object's key in the stack file (`pg1-patroni.yml`)."""
    target: Path
    """Where the program reads it: the local stack's path."""
    content: str
    owner: str
    """The system user that owns it (root: the CA certificate, readable by all)."""
    mode: int
    secret: bool
    readers: tuple[str, ...] = ()
    """The programs that read it (empty: any program of its owner, as on the local stack)."""

    @property
    def digest(self) -> str:
        """Of the content. Swarm keeps configs and secrets immutable: a name per content
        lets a redeploy of a changed file roll the services that mount it instead of
        failing."""
        return hashlib.sha256(self.content.encode()).hexdigest()[:10]


def check_supported(plan: StackPlan, target: str) -> None:
    """Refuse what the container targets do not carry yet, rather than render a stack that
    silently differs from the local one."""
    spec = plan.spec
    problems = []
    if plan.standby is not None or spec.standby_cluster is not None:
        problems.append("a standby cluster (standby_cluster): it reads the primary's files")
    if spec.backup.enabled and spec.backup.s3 is not None:
        problems.append("the S3 repository (backup.s3): its key is the operator's file")
    if spec.http.tls.cert is not None:
        problems.append("your own HTTPS certificate (http.tls.cert): the render issues one")
    if spec.postgres.version != 15:
        problems.append(f"postgres.version {spec.postgres.version}: the image has 15")
    defaults = BinariesSpec()
    for key in type(spec.binaries).model_fields:
        if getattr(spec.binaries, key) != getattr(defaults, key):
            problems.append(f"binaries.{key}: the image has Debian's (and make up's) paths")
    if problems:
        raise HastackError(
            f"stack {plan.name!r} cannot be rendered for {target} yet",
            "remove these from the spec for this render, or run the stack locally (hastack up)",
            problems,
        )


def system_users(plan: StackPlan) -> list[SystemUser]:
    """Every user of the plan (one per node, one per service) with its fixed uid."""
    users = [
        SystemUser(node.user, UID_BASE + NODE_UID_OFFSET + i, node.paths.home)
        for i, node in enumerate(plan.nodes, start=1)
    ]
    for service, name in plan.service_users.items():
        if service not in SERVICE_UID_OFFSETS:
            raise HastackError(f"no fixed uid for service user {name} ({service})")
        uid = UID_BASE + SERVICE_UID_OFFSETS[service]
        users.append(SystemUser(name, uid, plan.paths.service(service)))
    return users


def uid_of(plan: StackPlan, user: str) -> int:
    if user == "root":
        return 0
    return next(u.uid for u in system_users(plan) if u.name == user)


def state_dirs(plan: StackPlan) -> list[tuple[Path, str, int]]:
    """The state directory skeleton as runtime/layout.py makes it locally: (path, owner,
    mode), parents first. Baked into the image so that each named volume starts as a copy
    of its directory, with its owner and mode (a test keeps the two lists equal)."""
    paths = plan.paths
    dirs: list[tuple[Path, str, int]] = [
        (paths.state_dir, "root", 0o755),
        (paths.supervisor_dir, "root", 0o700),
        (paths.fencing_dir, "root", 0o700),
        (paths.logs_dir, "root", 0o700),
        (paths.drills_dir, "root", 0o755),
        (paths.tls_dir, "root", 0o755),
        (paths.nodes_dir, "root", 0o755),
    ]
    for node in plan.nodes:
        np = node.paths
        dirs += [(d, node.user, 0o700) for d in (np.root, np.socket_dir, np.log_dir, np.home)]
        if plan.backup_enabled and node.runs_postgres:
            dirs.append((np.pgbackrest_dir, node.user, 0o700))
            dirs += [(np.pgbackrest_dir / w, node.user, 0o700) for w in PGBACKREST_WORK_DIRS]
    dirs.append((paths.state_dir / "services", "root", 0o755))
    dirs += [(paths.service(s), user, 0o700) for s, user in plan.service_users.items()]
    dirs.append((paths.redis_data, plan.service_users["redis"], 0o700))
    if plan.monitoring_enabled:
        monitor = plan.service_users["monitor"]
        dirs += [(p, monitor, 0o700) for p in (paths.prometheus_data, paths.alertmanager_data)]
        dirs.append((paths.node_exporter_textfiles, "root", 0o755))
    if plan.backup_enabled:
        backup = plan.service_users["backup"]
        work = paths.backup_work_dir
        dirs += [(p, backup, 0o700) for p in (paths.backup_repo, work, paths.backup_scratch_dir)]
        dirs += [(work / w, backup, 0o700) for w in PGBACKREST_WORK_DIRS]
    return dirs


def certificates(plan: StackPlan) -> dict[str, CertRequest]:
    """The certificates `ensure_node_tls` and HAProxy's `ensure_tls` make locally, with the
    same names and addresses, by the name `material.issued` carries them under."""
    services = plan.services_address
    requests = {
        node.name: CertRequest(
            common_name=node.name,
            # As locally: pgBackRest matches the address against DNS names only, etcd sees
            # peers come from 127.0.0.1, PostgreSQL is also reached through HAProxy's.
            hostnames=(node.address,),
            addresses=(node.address, "127.0.0.1", services),
            client=True,
        )
        for node in plan.nodes
    }
    hostnames = tuple(plan.spec.http.tls.hostnames)
    requests["haproxy"] = CertRequest(
        common_name=hostnames[0] if hostnames else services,
        hostnames=hostnames,
        addresses=(services, "127.0.0.1"),
    )
    requests["haproxy-stats"] = CertRequest(common_name=services, addresses=(services,))
    requests["pgbouncer"] = CertRequest(common_name=services, addresses=(services,))
    if plan.backup_enabled:
        requests["backup"] = CertRequest(
            common_name=BACKUP_CERT_NAME,
            hostnames=(plan.backup_address,),
            addresses=(plan.backup_address, "127.0.0.1"),
            client=True,
        )
    if plan.monitoring_enabled:
        monitor = plan.monitor_address
        requests["monitor"] = CertRequest(common_name=monitor, addresses=(monitor,))
    requests[CLIENT_CERT] = CertRequest(
        common_name="hastack", addresses=("127.0.0.1",), client=True
    )
    return requests


def secret_values(secrets: Secrets) -> list[str]:
    """Every value that must never leave a secret file."""
    values = (getattr(secrets, name) for name in SECRET_PURPOSES if name not in NOT_SECRET)
    return [v for v in values if v]


def _key(plan: StackPlan, path: Path) -> str:
    parts = path.relative_to(plan.paths.state_dir).parts
    if parts[0] in ("nodes", "services"):
        parts = parts[1:]
    return "-".join(parts)


def _issued(material: StackMaterial, name: str) -> IssuedCert:
    cert = material.issued.get(name)
    if cert is None:
        raise HastackError(
            f"no certificate {name!r} was issued for this render",
            "the runtime issues every certificate the target's `certificates` asks for",
        )
    return cert


def _certificate_files(plan: StackPlan, material: StackMaterial) -> list[MountedFile]:
    """The certificates at the paths the configs name, owned as `ensure_node_tls` owns them."""
    paths = plan.paths
    users = plan.service_users
    # (cert name, owner, certificate path, key path)
    pairs: list[tuple[str, str, Path, Path]] = [
        (n.name, n.user, n.paths.tls_cert, n.paths.tls_key) for n in plan.nodes
    ]
    pairs.append(
        ("pgbouncer", users["pgbouncer"], paths.pgbouncer_tls_cert, paths.pgbouncer_tls_key)
    )
    if plan.backup_enabled:
        pairs.append(("backup", users["backup"], paths.backup_tls_cert, paths.backup_tls_key))
    if plan.monitoring_enabled:
        pairs.append(("monitor", users["monitor"], paths.monitor_tls_cert, paths.monitor_tls_key))
    ca = paths.ca_cert
    files = [MountedFile(_key(plan, ca), ca, material.ca_cert_pem, "root", PUBLIC_MODE, False)]
    for name, owner, cert_path, key_path in pairs:
        issued = _issued(material, name)
        files += [
            MountedFile(
                _key(plan, cert_path), cert_path, issued.cert_pem, owner, PUBLIC_MODE, False
            ),
            MountedFile(_key(plan, key_path), key_path, issued.key_pem, owner, PRIVATE_MODE, True),
        ]
    haproxy = users["haproxy"]
    site = _issued(material, "haproxy")
    stats = _issued(material, "haproxy-stats")
    # HAProxy wants certificate, chain and key in one file (as runtime/tls.py writes them).
    for path, pem in (
        (paths.haproxy_pem, site.cert_pem + material.ca_cert_pem + site.key_pem),
        (paths.haproxy_stats_pem, stats.cert_pem + stats.key_pem),
    ):
        files.append(MountedFile(_key(plan, path), path, pem, haproxy, PRIVATE_MODE, True))
    return files


def container_files(plan: StackPlan, material: StackMaterial) -> list[MountedFile]:
    """Every file mounted into some container: the local stack's config files (but root's:
    supervisord's config, and the watcher's, which runs in no container) and the
    certificates. A file is a Docker secret when the local stack keeps it private (0600)
    or it holds a secret value or a private key."""
    values = secret_values(material.secrets)
    files = []
    for f in render_stack(plan, material.secrets):
        if f.owner == "root":
            continue
        secret = (
            f.mode & 0o077 == 0 or "PRIVATE KEY" in f.content or any(v in f.content for v in values)
        )
        files.append(
            MountedFile(_key(plan, f.path), f.path, f.content, f.owner, f.mode, secret, f.readers)
        )
    return files + _certificate_files(plan, material)


def client_certificate(material: StackMaterial) -> tuple[str, str]:
    """hastack's client certificate and key (PEM), for the CLI on the host."""
    issued = _issued(material, CLIENT_CERT)
    return issued.cert_pem, issued.key_pem
