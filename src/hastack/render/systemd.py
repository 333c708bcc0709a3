"""Target systemd: one directory per host, with its unit files, its config files, its firewall
and an install script, for plain VMs. Pure.

One source of truth: a host gets the `Program`s of `stack_programs` whose unit (`hastack plan`'s
placement) is placed on it, as systemd services, and the files of `render_stack` those programs
read, at the same absolute paths: each host runs what `hastack up` runs on one machine.

    DIR/<host>/install.sh      run as root on the host: users, directories, files, units, firewall
    DIR/<host>/manifest.tsv    kind, mode, owner, absolute path of every directory and file
    DIR/<host>/files/<path>    each file at files/ + its absolute path on the host
    DIR/<host>/units/          the services, the firewall's and the host's target
    DIR/<host>/nftables.conf   the host's firewall (also installed under /etc/hastack/<stack>/)

The fencing watcher runs on the services host when `fencing.command` is set (without one it
could not fence a node on another host, so it is not rendered). Its config there says
"systemd": it fences a node on another host with the command, a node on its own host by
stopping that node's units (and starts them again once another node leads), and leaves
every other restart to systemd (`Restart=always`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from hastack.render.fencer import render_watcher_config
from hastack.render.files import RenderedFile, render_stack
from hastack.render.nftables import render_nftables, watcher_placed
from hastack.render.pgbackrest import BACKUP_CERT_NAME, PGBACKREST_WORK_DIRS
from hastack.render.program import Program
from hastack.render.programs import stack_programs
from hastack.render.systemd_install import install_script
from hastack.render.systemd_units import (
    UnitContext,
    env_file_path,
    firewall_path,
    firewall_unit,
    firewall_unit_name,
    service_unit,
    target_name,
    target_unit,
    unit_name,
)
from hastack.render.targets import SECRET_MODE, CertRequest, StackMaterial, Target, TargetFile
from hastack.spec.placement import BACKUP, MONITORING, SERVICES, Host
from hastack.spec.plan import StackPlan

EXPORTER_SUFFIX = "-postgres-exporter"

_SERVICE_GROUPS = {"haproxy", "pgbouncer", "redis", "wan-link", "fencer"}


@dataclass(frozen=True)
class Placed:
    """A directory or file of one host, as the manifest lists it."""

    kind: str
    """dir (made, or its owner and mode set), file (copied over) or keep (made empty once)."""
    path: str
    owner: str
    mode: int
    content: str = ""


def program_unit(plan: StackPlan, program: Program) -> str:
    """The placement unit a program belongs to: its node, its app instance, or the services,
    backup or monitoring unit. A node's PostgreSQL exporter listens on the node's address, so
    it runs with the node (though in the monitoring group locally)."""
    nodes = {n.name for n in plan.nodes}
    apps = {i.name for i in plan.app_instances}
    if program.group in nodes or program.group in apps:
        return program.group
    if program.name.endswith(EXPORTER_SUFFIX) and program.name[: -len(EXPORTER_SUFFIX)] in nodes:
        return program.name[: -len(EXPORTER_SUFFIX)]
    if program.group in _SERVICE_GROUPS:
        return SERVICES
    if program.group == "backup":
        return BACKUP
    if program.group == "monitor":
        return MONITORING
    raise ValueError(f"program {program.name} (group {program.group}) has no placement unit")


def placed_programs(plan: StackPlan) -> list[Program]:
    """The programs this target runs: all but the watcher when no fence command is set."""
    return [p for p in stack_programs(plan) if p.component != "fencer" or watcher_placed(plan)]


def host_programs(plan: StackPlan, host: Host) -> list[Program]:
    return [p for p in placed_programs(plan) if program_unit(plan, p) in host.units]


def _file_units(plan: StackPlan, file: RenderedFile, units_of: dict[str, str]) -> set[str]:
    """The units that read a config file: its readers' (the pseudo-reader `app` is every
    instance), or, for a file no program names, its owner's."""
    found = set()
    for reader in file.readers:
        if reader == "app":
            found |= {i.name for i in plan.app_instances}
        elif reader in units_of:
            found.add(units_of[reader])
    if file.readers:
        return found
    owners = {n.user: n.name for n in plan.nodes}
    services = {"backup": BACKUP, "monitor": MONITORING}
    owners |= {plan.service_users[s]: u for s, u in services.items() if s in plan.service_users}
    return {owners[file.owner]} if file.owner in owners else set()


def certificates(plan: StackPlan) -> dict[str, CertRequest]:
    """The names of ensure_node_tls and prepare_http, with the hosts' addresses."""
    svc = plan.services_address
    wanted = {
        f"node-{n.name}": CertRequest(
            n.name, (n.address,), (n.address, "127.0.0.1", svc), client=True
        )
        for n in plan.nodes
    }
    wanted["haproxy-stats"] = CertRequest(svc, (), (svc,))
    wanted["pgbouncer"] = CertRequest(svc, (), (svc,))
    wanted["hastack-client"] = CertRequest("hastack", (), ("127.0.0.1",), client=True)
    tls = plan.spec.http.tls
    if tls.cert is None:
        names = tuple(tls.hostnames)
        wanted["https"] = CertRequest(names[0] if names else svc, names, (svc, "127.0.0.1"))
    if plan.backup_enabled:
        wanted["backup"] = CertRequest(
            BACKUP_CERT_NAME,
            (plan.backup_address,),
            (plan.backup_address, "127.0.0.1"),
            client=True,
        )
    if plan.monitoring_enabled:
        mon = plan.monitor_address
        wanted["monitoring"] = CertRequest(mon, (), (mon,))
    return wanted


def _cert_files(plan: StackPlan, material: StackMaterial) -> list[tuple[set[str], Placed]]:
    """Each certificate and key where the local stack keeps it, for the units that use it."""
    paths, users, got = plan.paths, plan.service_users, material.issued
    found: list[tuple[set[str], Placed]] = []

    def pair(units: set[str], name: str, cert: object, key: object, owner: str) -> None:
        found.append((units, Placed("file", str(cert), owner, 0o644, got[name].cert_pem)))
        found.append((units, Placed("file", str(key), owner, SECRET_MODE, got[name].key_pem)))

    for node in plan.nodes:
        pair({node.name}, f"node-{node.name}", node.paths.tls_cert, node.paths.tls_key, node.user)
    stats = got["haproxy-stats"]
    found.append(
        (
            {SERVICES},
            Placed(
                "file",
                str(paths.haproxy_stats_pem),
                users["haproxy"],
                SECRET_MODE,
                stats.cert_pem + stats.key_pem,
            ),
        )
    )
    if "https" in got:
        https = got["https"]
        # HAProxy wants the certificate, its chain and the key in one file.
        site = https.cert_pem + material.ca_cert_pem + https.key_pem
        found.append(
            (
                {SERVICES},
                Placed("file", str(paths.haproxy_pem), users["haproxy"], SECRET_MODE, site),
            )
        )
    pair(
        {SERVICES},
        "pgbouncer",
        paths.pgbouncer_tls_cert,
        paths.pgbouncer_tls_key,
        users["pgbouncer"],
    )
    client = got["hastack-client"]
    found.append(
        ({SERVICES}, Placed("file", str(paths.client_cert), "root", SECRET_MODE, client.cert_pem))
    )
    found.append(
        ({SERVICES}, Placed("file", str(paths.client_key), "root", SECRET_MODE, client.key_pem))
    )
    if plan.backup_enabled:
        pair({BACKUP}, "backup", paths.backup_tls_cert, paths.backup_tls_key, users["backup"])
    if plan.monitoring_enabled:
        pair(
            {MONITORING},
            "monitoring",
            paths.monitor_tls_cert,
            paths.monitor_tls_key,
            users["monitor"],
        )
    return found


def _dirs(plan: StackPlan, host: Host) -> list[Placed]:
    """The directories of `host`'s units, with the owners and modes runtime/layout.py's
    prepare_dirs gives them on one machine."""
    paths, users = plan.paths, plan.service_users
    found = [
        Placed("dir", "/etc/hastack", "root", 0o755),
        Placed("dir", str(firewall_path(plan).parent), "root", 0o700),
        Placed("dir", str(paths.state_dir), "root", 0o755),
        Placed("dir", str(paths.tls_dir), "root", 0o755),
    ]

    def own(path: object, owner: str, mode: int = 0o700) -> None:
        found.append(Placed("dir", str(path), owner, mode))

    services = paths.state_dir / "services"
    for node in (n for n in plan.nodes if n.name in host.units):
        np = node.paths
        own(paths.nodes_dir, "root", 0o755)
        for path in (np.root, np.socket_dir, np.log_dir, np.home):
            own(path, node.user)
        if plan.backup_enabled and node.runs_postgres:
            for path in (np.pgbackrest_dir, *(np.pgbackrest_dir / w for w in PGBACKREST_WORK_DIRS)):
                own(path, node.user)
        if plan.monitoring_enabled and node.runs_postgres:  # its PostgreSQL exporter's files
            own(services, "root", 0o755)
            own(paths.monitor_dir, users["monitor"])
    if SERVICES in host.units:
        own(services, "root", 0o755)
        for service in ("haproxy", "pgbouncer", "redis"):
            own(paths.service(service), users[service])
        own(paths.redis_data, users["redis"])
        found.append(Placed("keep", str(paths.haproxy_server_state), users["haproxy"], 0o600))
        if watcher_placed(plan):
            own(paths.fencing_dir, "root")
            own(paths.holds_dir, "root")
    if any(i.name in host.units for i in plan.app_instances):
        own(services, "root", 0o755)
        own(paths.service("app"), users["app"])
    if BACKUP in host.units:
        own(services, "root", 0o755)
        work = paths.backup_work_dir
        for path in (paths.backup_dir, paths.backup_repo, work, paths.backup_scratch_dir):
            own(path, users["backup"])
        for w in PGBACKREST_WORK_DIRS:
            own(work / w, users["backup"])
    if MONITORING in host.units:
        own(services, "root", 0o755)
        for path in (paths.monitor_dir, paths.prometheus_data, paths.alertmanager_data):
            own(path, users["monitor"])
        own(paths.node_exporter_textfiles, "root", 0o755)
    unique = {p.path: p for p in reversed(found)}  # the first mention of a path wins
    return sorted(unique.values(), key=lambda p: p.path)


def secret_values(material: StackMaterial) -> list[str]:
    """Every secret value of the stack (a login name and a timestamp are not secrets)."""
    public = {"app_login", "app_secret_key_accepted_until"}
    s = material.secrets
    return [v for k in s.names() if k not in public and (v := str(getattr(s, k)))]


def _context(plan: StackPlan, program: Program, on_host: list[Program]) -> UnitContext:
    def units(component: str) -> tuple[str, ...]:
        return tuple(unit_name(plan, p.name) for p in on_host if p.component == component)

    after = {"patroni": units("etcd"), "pgbouncer": units("haproxy")}.get(program.component, ())
    if program.component != "fencer":
        return UnitContext(writable=(str(program.directory),), after=after)
    return UnitContext(
        writable=(),
        after=units("haproxy"),
        note=(
            "The fencing watcher: a node on another host is fenced with fencing.command (in\n"
            f"{plan.paths.fencer_config}), a node on this host by stopping its units;\n"
            "see docs/deploy-systemd.md#fencing."
        ),
    )


def watcher_units(plan: StackPlan, on_host: list[Program]) -> dict[str, str]:
    """What the watcher starts and stops through systemd on its own host: the Patroni and
    etcd of the nodes there (process name -> unit). Everything else systemd restarts."""
    nodes = {n.name for n in plan.nodes}
    return {
        p.process_name: unit_name(plan, p.name)
        for p in on_host
        if p.group in nodes and p.component in ("patroni", "etcd")
    }


def _host_files(plan: StackPlan, host: Host, material: StackMaterial) -> list[TargetFile]:
    programs = host_programs(plan, host)
    units_of = {p.name: program_unit(plan, p) for p in placed_programs(plan)}
    placed = _dirs(plan, host)
    placed.append(Placed("file", str(plan.paths.ca_cert), "root", 0o644, material.ca_cert_pem))
    for file in render_stack(plan, material.secrets):
        if file.path != plan.paths.supervisor_config and _file_units(plan, file, units_of) & set(
            host.units
        ):
            content = file.content
            if file.path == plan.paths.fencer_config:
                content = render_watcher_config(plan, watcher_units(plan, programs))
            placed.append(Placed("file", str(file.path), file.owner, file.mode, content))
    placed += [p for units, p in _cert_files(plan, material) if units & set(host.units)]
    if watcher_placed(plan) and SERVICES in host.units:
        # The watcher asks Patroni's REST API to rebuild a broken replica (root's, as on
        # one machine).
        secrets_dir = plan.paths.secrets_dir
        placed.append(Placed("dir", str(secrets_dir), "root", 0o700))
        rest = str(material.secrets.patroni_rest_password)
        rest_file = secrets_dir / "patroni_rest_password"
        placed.append(Placed("file", str(rest_file), "root", SECRET_MODE, rest))
    root = PurePosixPath(host.name)
    out: list[TargetFile] = []
    secrets = secret_values(material)
    for program in programs:
        unit = service_unit(plan, program, _context(plan, program, programs), secrets)
        out.append(TargetFile(root / "units" / unit.name, unit.text))
        if unit.env_file is not None:
            env = Placed(
                "file", str(env_file_path(plan, program.name)), "root", SECRET_MODE, unit.env_file
            )
            placed.append(env)
    enabled = [unit_name(plan, p.name) for p in programs]
    out.append(
        TargetFile(root / "units" / target_name(plan), target_unit(plan, host.name, enabled))
    )
    out.append(TargetFile(root / "units" / firewall_unit_name(plan), firewall_unit(plan)))
    nft = render_nftables(plan, host)
    out.append(TargetFile(root / "nftables.conf", nft))
    placed.append(Placed("file", str(firewall_path(plan)), "root", 0o644, nft))
    for p in placed:
        if p.kind == "file":
            out.append(TargetFile(root / "files" / p.path.lstrip("/"), p.content, p.mode))
    out.append(TargetFile(root / "manifest.tsv", manifest(placed)))
    script = install_script(plan, host, _users(plan, programs, placed), _binaries(plan, programs))
    out.append(TargetFile(root / "install.sh", script, 0o755))
    return out


def manifest(placed: Iterable[Placed]) -> str:
    """One line per directory and file: kind, mode (octal), owner, absolute path (tabs)."""
    return "".join(f"{p.kind}\t{p.mode:04o}\t{p.owner}\t{p.path}\n" for p in placed)


def _users(plan: StackPlan, programs: list[Program], placed: list[Placed]) -> dict[str, str]:
    """The system users of a host, each with its home (the local stack's)."""
    homes = {n.user: str(n.paths.home) for n in plan.nodes}
    homes |= {u: str(plan.paths.service(s)) for s, u in plan.service_users.items()}
    wanted = {p.user for p in programs} | {p.owner for p in placed}
    return {u: homes[u] for u in sorted(wanted) if u != "root"}


def _binaries(plan: StackPlan, programs: list[Program]) -> list[str]:
    """The executables the host's programs run (the install refuses to go on without them)."""
    known = {str(v) for v in plan.spec.binaries.model_dump().values() if v is not None}
    found = {w for p in programs for w in p.argv if w in known}
    if any(p.component == "patroni" for p in programs):
        found |= {str(plan.postgres_bin_dir / name) for name in ("postgres", "pg_ctl")}
    return sorted(found)


def render(plan: StackPlan, material: StackMaterial) -> list[TargetFile]:
    return [f for host in plan.hosts for f in _host_files(plan, host, material)]


def next_steps(plan: StackPlan, out: str) -> list[str]:
    steps = [
        f"copy {out}/{h.name}/ to host {h.name} ({h.address}); run `bash install.sh` there as root"
        for h in plan.hosts
    ]
    steps.append(
        f"the hosts' firewalls only accept the stack's flows from each other: run the installs on "
        f"every host, then `systemctl status {target_name(plan)}` on each"
    )
    if not watcher_placed(plan):
        steps.append(
            "no fencing.command: a dead primary's host is not fenced; failover waits for the "
            "leader key's TTL (see docs/deploy-systemd.md)"
        )
    return steps


TARGET = Target(
    name="systemd",
    summary="per-host directories of systemd units, config files, an nftables firewall and an "
    "install script, for plain VMs",
    render=render,
    certificates=certificates,
    next_steps=next_steps,
)
