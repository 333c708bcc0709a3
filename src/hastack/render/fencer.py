"""The fencing watcher's configuration: everything it needs, so it never reads the spec."""

from __future__ import annotations

import json

from hastack.spec.plan import StackPlan


def render_fencer_config(plan: StackPlan) -> str:
    spec = plan.spec
    f = spec.fencing
    data = {
        "stack": plan.name,
        "leader_key": plan.leader_key(),
        "config_key": f"{plan.etcd_namespace}{plan.name}/config",
        "etcd_urls": list(plan.etcd_client_urls),
        "detect_s": f.detect_s,
        "poll_interval_s": f.poll_interval_ms / 1000,
        "probe_timeout_s": f.probe_timeout_ms / 1000,
        "supervisor_socket": str(plan.paths.supervisor_socket),
        "decision_log": str(plan.paths.fencer_log),
        "hold_file": str(plan.paths.fencer_hold),
        "nodes": [
            {
                "name": n.name,
                "address": n.address,
                "user": n.user,
                "rest_port": spec.patroni.rest_port,
                "pg_port": spec.postgres.port,
                "pgdata": str(n.paths.pgdata),
                "etcd_url": f"http://{n.address}:{spec.etcd.client_port}"
                if n.etcd_member
                else None,
            }
            for n in plan.postgres_nodes
        ],
    }
    return json.dumps(data, indent=2) + "\n"
