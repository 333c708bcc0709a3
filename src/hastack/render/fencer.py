"""The watcher's configuration: everything it needs, so it never reads the spec."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict

from hastack.render.programs import stack_programs
from hastack.spec.names import RO_BACKEND, RW_BACKEND
from hastack.spec.placement import SERVICES
from hastack.spec.plan import StackPlan


def render_watcher_config(plan: StackPlan, units: Mapping[str, str] | None = None) -> str:
    """`units` (process name -> systemd unit): the watcher runs on a host of the systemd
    render, where systemd runs those programs (its own host's nodes) and no supervisord
    does; None: supervisord runs every program (one machine, the lab)."""
    spec = plan.spec
    paths = plan.paths
    programs = stack_programs(plan)
    node_names = {n.name for n in plan.nodes}

    def program_of(node: str, component: str) -> str | None:
        found = [p.process_name for p in programs if p.group == node and p.component == component]
        return found[0] if found else None

    data = {
        "stack": plan.name,
        "leader_key": plan.leader_key(),
        "config_key": f"{plan.etcd_namespace}{plan.name}/config",
        "etcd_urls": list(plan.etcd_client_urls),
        "etcd_identity": {
            "ca": str(paths.ca_cert),
            "cert": str(paths.client_cert),
            "key": str(paths.client_key),
        },
        "timings": asdict(plan.watcher),
        "supervisor_socket": str(paths.supervisor_socket),
        "supervisor_pidfile": str(paths.supervisor_pidfile),
        # Once a leader is fenced or its key released, take it out of HAProxy at once (its
        # checks tolerate a Patroni restart, and an isolated leader still passes them) until
        # its Patroni reports it running again as a replica.
        "haproxy_socket": str(paths.haproxy_socket),
        "haproxy_rw_backend": RW_BACKEND,
        "haproxy_backends": [RW_BACKEND, RO_BACKEND],
        "decision_log": str(paths.fencer_log),
        "holds_dir": str(paths.holds_dir),
        "heartbeat_file": str(paths.watcher_heartbeat),
        "state_file": str(paths.watcher_state),
        "secrets_dir": str(paths.secrets_dir),
        **_metrics(plan),
        # When supervisord dies, its programs keep running unsupervised; `up` (from the
        # installed hastack, with the spec it last applied) takes them over.
        "recover_command": [
            str(spec.binaries.hastack_python),
            "-m",
            "hastack",
            "-c",
            str(paths.applied_spec),
            "up",
        ],
        "recover_log": str(paths.watcher_recover_log),
        # How the watcher recognises the stack's processes that no supervisord owns.
        "identity": {
            "nodes": {n.user: n.name for n in plan.nodes},
            "services": {u: s for s, u in plan.service_users.items()},
            "apps": {i.address: i.name for i in plan.app_instances},
            "watcher_config": str(paths.fencer_config),
        },
        **_fence_commands(plan),
        "nodes": [
            {
                "name": n.name,
                "address": n.address,
                "host": host.name if (host := plan.host_of(n.name)) else "",
                "user": n.user,
                "rest_port": spec.patroni.rest_port,
                "rest_ca": str(paths.ca_cert),
                "pg_port": spec.postgres.port,
                "pgdata": str(n.paths.pgdata),
                "etcd_url": plan.etcd_url(n) if n.etcd_member else None,
                "etcd_program": program_of(n.name, "etcd"),
                "patroni_program": program_of(n.name, "patroni"),
                "archive_push": [
                    str(spec.binaries.pgbackrest),
                    f"--config={n.paths.pgbackrest_config}",
                    f"--stanza={plan.stanza}",
                ]
                if plan.backup_enabled
                else [],
            }
            for n in plan.postgres_nodes
        ],
        "programs": [
            {
                "process_name": p.process_name,
                "component": p.component,
                "node": p.group if p.group in node_names else "",
                **({} if units is None else {"unit": units[p.process_name]}),
            }
            for p in programs
            if units is None or p.process_name in units
        ],
        "manager": "supervisord" if units is None else "systemd",
        # No `hastack up` ran on a host of the systemd render: no applied spec to name.
        **({} if units is None else {"applied_spec": ""}),
    }
    return json.dumps(data, indent=2) + "\n"


def _fence_commands(plan: StackPlan) -> dict[str, str]:
    """On separate hosts the watcher cannot stop another host's processes: it fences with
    the operator's command (the config is root's, 0600: the command may hold a credential).
    On one machine (no command here) it stops them itself."""
    fencing = plan.spec.fencing
    by_command = bool(plan.hosts) and fencing.command is not None
    return {
        "fence_command": (fencing.command or "") if by_command else "",
        "unfence_command": (fencing.unfence_command or "") if by_command else "",
        "applied_spec": str(plan.paths.applied_spec),
        "own_host": own.name if by_command and (own := plan.host_of(SERVICES)) else "",
    }


def _metrics(plan: StackPlan) -> dict[str, object]:
    """What the watcher needs to write hastack's own metrics (with monitoring only)."""
    if not plan.monitoring_enabled:
        return {}
    paths = plan.paths
    certificates = {
        "ca": paths.ca_cert,
        **{f"{n.name}": n.paths.tls_cert for n in plan.nodes},
        "haproxy-stats": paths.haproxy_stats_pem,
        "pgbouncer": paths.pgbouncer_tls_cert,
        "monitoring": paths.monitor_tls_cert,
        "hastack-client": paths.client_cert,
    }
    if plan.app_instances:
        certificates["https"] = paths.haproxy_pem
    if plan.backup_enabled:
        certificates["backup"] = paths.backup_tls_cert
    return {
        "metrics_file": str(paths.node_exporter_textfiles / "hastack.prom"),
        "metrics_owner": plan.service_users["monitor"],
        "decisions_mirror": str(paths.decisions_mirror),
        "stanza": plan.stanza if plan.backup_enabled else "",
        "backup_state_file": str(paths.backup_scheduler_state) if plan.backup_enabled else "",
        "certificates": {name: str(path) for name, path in certificates.items()},
    }
