"""The fencing watcher's configuration: everything it needs, so it never reads the spec."""

from __future__ import annotations

import json

from hastack.render.haproxy import RO_BACKEND, RW_BACKEND
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
        # A healthy leader reaches etcd every loop_wait; one out of touch longer than
        # retry_timeout demotes itself anyway (Patroni's own rule). One second more for the
        # whole-second clocks of dcs_last_seen and etcd leases.
        "dcs_silence_s": max(spec.patroni.retry_timeout_s, 2 * spec.patroni.loop_wait_s) + 1.0,
        # In synchronous mode such a leader cannot acknowledge a commit once its synchronous
        # standby is promoted, so its key may be released while it still runs.
        "release_running_stale_leader": spec.postgres.synchronous_mode,
        "poll_interval_s": f.poll_interval_ms / 1000,
        "probe_timeout_s": f.probe_timeout_ms / 1000,
        "supervisor_socket": str(plan.paths.supervisor_socket),
        # Once a leader is fenced or its key released, take it out of HAProxy at once (its
        # checks tolerate a Patroni restart, and an isolated leader still passes them) until
        # its Patroni reports it running again as a replica.
        "haproxy_socket": str(plan.paths.haproxy_socket),
        "haproxy_rw_backend": RW_BACKEND,
        "haproxy_backends": [RW_BACKEND, RO_BACKEND],
        "routed_away_file": str(plan.paths.fencing_dir / "routed-away.json"),
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
