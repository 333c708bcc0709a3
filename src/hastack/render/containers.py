"""The services of the container targets (swarm, compose), shared by both. Pure.

One service per program of the local stack (`stack_programs`), with its argv, user,
environment and working directory unchanged; the files it reads (`container_files`) mounted
at their local paths; its unit's directory (`nodes/pg1`, `services/redis`, ...) as a named
volume at that path, so data directories (pgdata, etcd, Redis, the repository, Prometheus)
live in volumes; and a health check. Host networking keeps every address of the plan, so
nothing in any config changes. swarm.py and compose.py add what differs between engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from hastack.render.container_files import MountedFile, container_files, uid_of
from hastack.render.program import Program
from hastack.render.programs import stack_programs
from hastack.render.targets import SECRET_MODE, StackMaterial, TargetFile
from hastack.spec.placement import BACKUP, MONITORING, SERVICES
from hastack.spec.plan import Node, StackPlan

EXCLUDED_COMPONENTS = {
    "fencer": (
        "the watcher fences by signalling other users' processes and restarts them through "
        "supervisord; in containers the engine restarts tasks (about 2.5 s) and kills a "
        "stalled one whose health check fails, and a task killed is its whole node: "
        "PostgreSQL cannot outlive Patroni there (docs/deploy-swarm.md#fencing)"
    ),
    "link": (
        "the WAN-link emulator belongs to a standby cluster on one machine, which the "
        "container targets do not render"
    ),
}
"""Programs of the local stack with no service, by component, and why."""

UNIT_OF_GROUP = {
    "haproxy": SERVICES,
    "pgbouncer": SERVICES,
    "redis": SERVICES,
    "backup": BACKUP,
    "monitor": MONITORING,
}
"""The placement unit of a shared service's programs (a node's and an app instance's are
the node and the instance)."""

HEALTH_INTERVAL = "2s"
HEALTH_TIMEOUT_S = 2
HEALTH_RETRIES = 3
START_PERIOD_S = {"patroni": 30, "etcd": 20}
"""Failures inside it do not count: Patroni waits for etcd, etcd for a quorum."""
DEFAULT_START_PERIOD_S = 10

CURL = "/usr/bin/curl"


@dataclass(frozen=True)
class ContainerService:
    program: Program
    unit: str
    """The placement unit (pg1, services, app2, ...): the label its node must carry."""
    volume: str
    """The named volume mounted at the program's directory (its unit's disk)."""
    files: tuple[MountedFile, ...]
    healthcheck: tuple[str, ...] | None

    @property
    def name(self) -> str:
        return self.program.name


def container_programs(plan: StackPlan) -> list[Program]:
    return [p for p in stack_programs(plan) if p.component not in EXCLUDED_COMPONENTS]


def node_of(plan: StackPlan, program: Program) -> Node | None:
    """The node a program belongs to (pg1-etcd, pg1-patroni, pg1-pgbackrest and
    pg1-postgres-exporter are pg1's: they bind its address)."""
    return next((n for n in plan.nodes if program.name.startswith(f"{n.name}-")), None)


def unit_of(plan: StackPlan, program: Program) -> str:
    node = node_of(plan, program)
    if node is not None:
        return node.name
    if program.component == "app":
        return program.name
    return UNIT_OF_GROUP[program.group]


def volume_of(plan: StackPlan, directory: Path) -> str:
    """`nodes/pg1` -> pg1, `services/redis` -> redis."""
    return directory.relative_to(plan.paths.state_dir).parts[-1]


def _curl(url: str, *, fail: bool = True, ca: Path | None = None) -> tuple[str, ...]:
    """Without `fail`, any HTTP answer counts: the endpoint wants a login whose password
    the check must not carry, and a TLS handshake checked against the CA already proves
    the right server answers."""
    return (
        CURL,
        "-sS" + ("f" if fail else ""),
        "-o",
        "/dev/null",
        "--max-time",
        str(HEALTH_TIMEOUT_S),
        *(("--cacert", str(ca)) if ca else ()),
        url,
    )


def _monitor_check(plan: StackPlan, program: Program) -> tuple[str, ...] | None:
    m = plan.spec.monitoring
    mon = plan.monitor_address
    ca = plan.paths.ca_cert
    node = node_of(plan, program)
    if node is not None:
        return _curl(f"http://{node.address}:{m.postgres_exporter_port}/metrics")
    checks = {
        "prometheus": _curl(f"https://{mon}:{m.prometheus_port}/-/ready", fail=False, ca=ca),
        "alertmanager": _curl(f"https://{mon}:{m.alertmanager_port}/-/ready", fail=False, ca=ca),
        "dashboard": _curl(f"https://{mon}:{m.dashboard_port}/", fail=False, ca=ca),
        "alert-receiver": _curl(f"http://{mon}:{m.receiver_port}/", fail=False),
        "node-exporter": _curl(f"http://{mon}:{m.node_exporter_port}/metrics"),
        "pgbouncer-exporter": _curl(f"http://{mon}:{m.pgbouncer_exporter_port}/metrics"),
        "redis-exporter": _curl(f"http://{mon}:{m.redis_exporter_port}/metrics"),
    }
    return checks.get(program.name)


def health_command(plan: StackPlan, program: Program) -> tuple[str, ...] | None:
    """Is the program alive (the engine replaces a task that is not)? Liveness, never
    readiness: HAProxy routes by readiness; a check that failed while a replica clones or
    etcd lacks a quorum would have the engine kill a healthy process in a loop."""
    spec = plan.spec
    ca = plan.paths.ca_cert
    node = node_of(plan, program)
    component = program.component
    if component == "etcd" and node is not None:
        # `endpoint status` is answered by the member alone (`endpoint health` needs a
        # quorum); with the node's client certificate, as every client of etcd needs.
        return (
            str(spec.binaries.etcd.parent / "etcdctl"),
            f"--endpoints={plan.etcd_url(node)}",
            f"--cacert={ca}",
            f"--cert={node.paths.tls_cert}",
            f"--key={node.paths.tls_key}",
            f"--dial-timeout={HEALTH_TIMEOUT_S}s",
            f"--command-timeout={HEALTH_TIMEOUT_S}s",
            "endpoint",
            "status",
        )
    if component == "patroni" and node is not None:
        # /liveness: Patroni's HA loop runs (/health would fail while a replica clones).
        return _curl(f"https://{node.address}:{spec.patroni.rest_port}/liveness", ca=ca)
    if component == "pgbackrest":
        # The program's own config names the address and port its TLS server listens on.
        # Without a short io-timeout a refused ping retries for a minute; without
        # log-level-file=off each ping would append to the server's log directory.
        config = next(a for a in program.argv if a.startswith("--config="))
        return (
            str(spec.binaries.pgbackrest),
            config,
            f"--io-timeout={HEALTH_TIMEOUT_S}",
            "--log-level-file=off",
            "server-ping",
        )
    services = plan.services_address
    if component == "haproxy":
        return _curl(f"https://{services}:{spec.haproxy.stats_port}/", fail=False, ca=ca)
    if component == "pgbouncer":
        pg_isready = str(plan.postgres_bin_dir / "pg_isready")
        port = str(spec.pgbouncer.port)
        return (pg_isready, "-h", services, "-p", port, "-d", "pgbouncer", "-t", "2")
    if component == "redis":
        # Without the password Redis still answers (NOAUTH): alive, and no secret in argv.
        cli = spec.binaries.redis_server.parent / "redis-cli"
        ping = f"{cli} -h {services} -p {spec.redis.port} ping 2>&1 | grep -qE 'PONG|NOAUTH'"
        return ("/bin/sh", "-c", ping)
    if component == "app":
        instance = next(i for i in plan.app_instances if i.name == program.name)
        return _curl(f"{instance.url}{spec.app.health_path}")
    if component == "monitor":
        return _monitor_check(plan, program)
    return None  # the backup scheduler: no port, nothing to ask


def healthcheck(service: ContainerService) -> dict[str, Any] | None:
    if service.healthcheck is None:
        return None
    start = START_PERIOD_S.get(service.program.component, DEFAULT_START_PERIOD_S)
    return {
        "test": ["CMD", *service.healthcheck],
        "interval": HEALTH_INTERVAL,
        "timeout": f"{HEALTH_TIMEOUT_S + 1}s",
        "retries": HEALTH_RETRIES,
        "start_period": f"{start}s",
    }


def container_services(
    plan: StackPlan, material: StackMaterial
) -> tuple[list[ContainerService], list[MountedFile]]:
    """Every service, and every file any of them mounts (each once).

    A program gets every file its user owns, and the CA certificate: exactly what the same
    process can read on the local stack, where files are private to their owner. That
    covers the files it names itself and those its children read (Patroni's archive_command
    runs pgBackRest with the node's pgbackrest.conf)."""
    files = container_files(plan, material)
    services = [
        ContainerService(
            program=p,
            unit=unit_of(plan, p),
            volume=volume_of(plan, p.directory),
            files=tuple(f for f in files if f.owner in (p.user, "root")),
            healthcheck=health_command(plan, p),
        )
        for p in container_programs(plan)
    ]
    used = {f.key for s in services for f in s.files}
    return services, [f for f in files if f.key in used]


def escape(value: str) -> str:
    """Both engines expand $VAR in the file; Patroni's argv has a literal "$0" "$@"."""
    return value.replace("$", "$$")


def common_service(plan: StackPlan, service: ContainerService, image: str) -> dict[str, Any]:
    """The keys both engines read the same way."""
    p = service.program
    # supervisord gives a program run as another user a HOME of its own (supervisord.py).
    environment = {"HOME": str(p.directory), **p.environment}
    entry: dict[str, Any] = {
        "image": image,
        "user": p.user,
        "working_dir": str(p.directory),
        "command": [escape(a) for a in p.argv],
        "environment": {k: escape(v) for k, v in sorted(environment.items())},
        "volumes": [f"{service.volume}:{p.directory}"],
    }
    check = healthcheck(service)
    if check is not None:
        check["test"] = [escape(a) for a in check["test"]]
        entry["healthcheck"] = check
    entry["stop_signal"] = f"SIG{p.stop_signal}"
    entry["stop_grace_period"] = f"{p.stop_wait_s}s"
    return entry


def file_mounts(
    plan: StackPlan, service: ContainerService, *, owners: bool
) -> dict[str, list[dict[str, Any]]]:
    """`configs:` and `secrets:` of one service. `owners`: uid, gid and mode on each (Swarm
    sets them; Compose bind-mounts the file as it is on disk and ignores them)."""
    mounts: dict[str, list[dict[str, Any]]] = {"configs": [], "secrets": []}
    for f in sorted(service.files, key=lambda f: str(f.target)):
        entry: dict[str, Any] = {"source": f.key, "target": str(f.target)}
        if owners:
            uid = str(uid_of(plan, f.owner))
            entry.update({"uid": uid, "gid": uid, "mode": f.mode})
        mounts["secrets" if f.secret else "configs"].append(entry)
    return {kind: entries for kind, entries in mounts.items() if entries}


def object_name(plan: StackPlan, f: MountedFile) -> str:
    """Docker's name for the object (at most 64 characters, per stack, per content)."""
    digest = f.digest
    prefix = f"{plan.name}-{f.key}"[: 64 - len(digest) - 1].rstrip("-._")
    return f"{prefix}-{digest}"


def top_level_objects(
    plan: StackPlan, files: list[MountedFile]
) -> dict[str, dict[str, dict[str, str]]]:
    """The stack file's `configs:` and `secrets:`, each read from its file beside it."""
    objects: dict[str, dict[str, dict[str, str]]] = {"configs": {}, "secrets": {}}
    for f in sorted(files, key=lambda f: f.key):
        kind = "secrets" if f.secret else "configs"
        objects[kind][f.key] = {"name": object_name(plan, f), "file": f"./{kind}/{f.key}"}
    return {kind: entries for kind, entries in objects.items() if entries}


def object_files(directory: str, files: list[MountedFile]) -> list[TargetFile]:
    """The files `top_level_objects` points at, secrets 0600."""
    return [
        TargetFile(
            PurePosixPath(directory, "secrets" if f.secret else "configs", f.key),
            f.content,
            SECRET_MODE if f.secret else 0o644,
        )
        for f in sorted(files, key=lambda f: f.key)
    ]


def volumes(services: list[ContainerService]) -> dict[str, dict[str, Any]]:
    return {name: {} for name in sorted({s.volume for s in services})}


def placement_label(unit: str) -> str:
    """The node label a unit's services are placed by (on one machine: all on one node)."""
    return f"hastack.{unit}"
