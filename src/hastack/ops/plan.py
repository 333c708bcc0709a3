"""`hastack plan`: every derived value, with the inputs and formula that produced it."""

from __future__ import annotations

from dataclasses import dataclass

from hastack.spec.plan import StackPlan


@dataclass(frozen=True)
class PlanRow:
    key: str
    value: str
    how: str = ""


def _mb(kb: int) -> str:
    return f"{kb // 1024} MB" if kb % 1024 == 0 else f"{kb} kB"


def plan_sections(plan: StackPlan) -> dict[str, list[PlanRow]]:
    spec = plan.spec
    t = plan.tuning
    pool = plan.pool
    hap = spec.haproxy
    svc = plan.services_address
    mem = spec.postgres.memory_mb
    nodes = [
        PlanRow(
            n.name,
            n.address,
            f"user {n.user}; runs "
            + ", ".join(
                x
                for x in (
                    f"etcd ({n.etcd_member})" if n.etcd_member else "",
                    "patroni + postgres" if n.runs_postgres else "",
                )
                if x
            ),
        )
        for n in plan.nodes
    ]
    endpoints = [
        PlanRow("pgbouncer", f"{svc}:{spec.pgbouncer.port}", "DATABASE_URL, DATABASE_URL_RO"),
        PlanRow("haproxy read-write", f"{svc}:{hap.rw_port}", "primary (Patroni /primary)"),
        PlanRow("haproxy read-only", f"{svc}:{hap.ro_port}", "replicas; primary if none"),
        PlanRow("haproxy stats", f"https://{svc}:{hap.stats_port}/", "and /metrics, same login"),
        PlanRow("redis", f"{svc}:{spec.redis.port}", "REDIS_URL"),
        PlanRow("postgres (each node)", f"<node>:{spec.postgres.port}", "direct, for operators"),
        PlanRow("patroni REST (each node)", f"https://<node>:{spec.patroni.rest_port}", "stack CA"),
        PlanRow(
            "etcd (each member)",
            f"<node>:{spec.etcd.client_port} (peer {spec.etcd.peer_port})",
            "",
        ),
    ]
    pg = [
        PlanRow("memory per node", f"{mem} MB", "postgres.memory_mb"),
        PlanRow(
            "max_connections",
            str(t.max_connections),
            "postgres.max_connections"
            if spec.postgres.max_connections
            else f"pools {pool.server_connections_max} + direct {spec.postgres.direct_connections}",
        ),
        PlanRow("shared_buffers", _mb(t.shared_buffers_kb), "25% of memory"),
        PlanRow("effective_cache_size", _mb(t.effective_cache_size_kb), "75% of memory"),
        PlanRow(
            "work_mem",
            _mb(t.work_mem_kb),
            "(memory - shared_buffers) / max_connections / 2",
        ),
        PlanRow("maintenance_work_mem", _mb(t.maintenance_work_mem_kb), "memory / 32, <= 2 GB"),
        PlanRow("wal_buffers", _mb(t.wal_buffers_kb), "shared_buffers / 32, <= 16 MB"),
        PlanRow("checkpoint_completion_target", str(t.checkpoint_completion_target), ""),
        PlanRow("random_page_cost", str(t.random_page_cost), "SSD"),
        PlanRow(
            "synchronous_mode",
            str(spec.postgres.synchronous_mode).lower(),
            "strict" if spec.postgres.synchronous_mode_strict else "non-strict",
        ),
        PlanRow("failsafe_mode", str(spec.postgres.failsafe_mode).lower(), ""),
        PlanRow("bin_dir", str(plan.postgres_bin_dir), ""),
    ]
    pooling = [
        PlanRow("pool_mode", spec.pgbouncer.pool_mode, ""),
        PlanRow(
            "max_client_conn", str(spec.pgbouncer.max_client_conn), "pgbouncer.max_client_conn"
        ),
        PlanRow(
            "default_pool_size",
            str(pool.default_pool_size),
            "pgbouncer.default_pool_size"
            if spec.pgbouncer.default_pool_size
            else f"max_client_conn / 10 / {pool.pools} pools (10:1 multiplexing)",
        ),
        PlanRow("reserve_pool_size", str(pool.reserve_pool_size), ""),
        PlanRow(
            "server connections per node (max)",
            str(pool.server_connections_max),
            f"{pool.pools} pools x (pool + reserve)",
        ),
        PlanRow("databases", ", ".join(plan.pgbouncer_databases), "read-write, read-only"),
    ]
    p = spec.patroni
    ha = [
        PlanRow("ttl", f"{p.ttl_s} s", "bounds failover when a node dies"),
        PlanRow("loop_wait", f"{p.loop_wait_s} s", ""),
        PlanRow("retry_timeout", f"{p.retry_timeout_s} s", ""),
        PlanRow(
            "loop_wait + 2 x retry_timeout",
            f"{p.loop_wait_s + 2 * p.retry_timeout_s} s",
            f"must be <= ttl ({p.ttl_s} s)",
        ),
        PlanRow("maximum_lag_on_failover", f"{p.maximum_lag_on_failover_bytes} bytes", ""),
        PlanRow(
            "haproxy checks",
            f"inter {hap.check.inter_ms} ms, fastinter {hap.check.fastinter_ms} ms, "
            f"fall {hap.check.fall}, rise {hap.check.rise}",
            "refused connection: out at once; silent Patroni: fall x fastinter",
        ),
        PlanRow(
            "etcd",
            f"{spec.etcd.members} members, heartbeat {spec.etcd.heartbeat_interval_ms} ms, "
            f"election {spec.etcd.election_timeout_ms} ms",
            f"quorum {spec.etcd.members // 2 + 1}",
        ),
    ]
    a, app = plan.admission, spec.app
    app_tier = [
        PlanRow("instances", str(len(plan.app_instances)), "app.instances"),
        PlanRow("database pool per instance", str(app.db_pool_size), "app.db_pool_size"),
        PlanRow(
            "maxconn per instance",
            str(a.maxconn_per_instance),
            "app.max_concurrent_requests"
            if app.max_concurrent_requests
            else "2 x app.db_pool_size (the rest queue in HAProxy)",
        ),
        PlanRow(
            "queue bound",
            f"{a.max_queue} requests",
            "http.max_queue"
            if spec.http.max_queue
            else "maxconn x instances; beyond it: 503 + Retry-After at once",
        ),
        PlanRow("queue timeout", f"{a.queue_timeout_ms} ms", "then 503 + Retry-After"),
    ]
    state = [
        PlanRow("state_dir", str(plan.paths.state_dir), ""),
        PlanRow("service users", ", ".join(plan.service_users.values()), ""),
        PlanRow(
            "redis",
            f"maxmemory {spec.redis.maxmemory_mb} MB, {spec.redis.maxmemory_policy}",
            "AOF on" if spec.redis.appendonly else "AOF off",
        ),
    ]
    return {
        **({"hosts": _host_rows(plan)} if plan.hosts else {}),
        "nodes": nodes,
        "endpoints": endpoints,
        "postgres": pg,
        "pooling": pooling,
        "ha": ha,
        **({"app tier": app_tier} if plan.app_instances else {}),
        **({"backups": _backup_rows(plan)} if plan.backup_enabled else {}),
        **({"standby cluster": _standby_rows(plan)} if plan.standby else {}),
        "stack": state,
    }


def _host_rows(plan: StackPlan) -> list[PlanRow]:
    named = {unit for host in plan.spec.hosts for unit in host.runs}
    target = plan.spec.target
    return [
        PlanRow("target", target, f"`hastack render {target} --out DIR` writes it"),
        *(
            PlanRow(
                host.name,
                host.address,
                ", ".join(u if u in named else f"{u} (placed by hastack)" for u in host.units),
            )
            for host in plan.hosts
        ),
    ]


def _standby_rows(plan: StackPlan) -> list[PlanRow]:
    sb = plan.standby
    assert sb is not None
    link = (
        f"relay {sb.host}:{sb.port}, {sb.latency_ms} ms each way (standby_cluster.latency_ms)"
        if sb.relayed
        else "direct"
    )
    return [
        PlanRow("primary stack", sb.primary_name, "standby_cluster.primary"),
        PlanRow(
            "streams from",
            f"{sb.primary_host}:{sb.primary_port}",
            "the primary's HAProxy read-write port (follows its failovers)",
        ),
        PlanRow("link", link, ""),
        PlanRow(
            "takes from the primary",
            "roles' passwords, SCRAM salt seed, app keys; trusts its CA",
            str(sb.primary_state_dir),
        ),
    ]


def _backup_rows(plan: StackPlan) -> list[PlanRow]:
    backup = plan.spec.backup
    every = backup.schedule
    return [
        PlanRow(
            "repository host",
            f"{plan.backup_address}:{plan.repo_port}",
            f"user {plan.service_users['backup']}; pgBackRest TLS server",
        ),
        PlanRow("repository", str(plan.paths.backup_repo), "aes-256-cbc, zstd"),
        PlanRow(
            "WAL archive",
            f"archive_timeout {backup.archive_timeout_s} s",
            "the most a loss of every node loses (plus the push)",
        ),
        PlanRow(
            "schedule",
            f"full {every.full_every_h:g} h, diff {every.diff_every_h:g} h, "
            f"incr {every.incr_every_h:g} h",
            "backup.schedule",
        ),
        PlanRow(
            "retention",
            f"{backup.retention_full} full, {backup.retention_diff} diff",
            "backup.retention_full, retention_diff",
        ),
        PlanRow(
            "scratch restores",
            f"{plan.backup_address}:{plan.scratch_port}",
            "hastack restore",
        ),
    ]


def plan_as_dict(plan: StackPlan) -> dict[str, object]:
    return {
        "stack": plan.name,
        "sections": {
            name: [{"key": r.key, "value": r.value, "how": r.how} for r in rows]
            for name, rows in plan_sections(plan).items()
        },
        "derived": {
            "target": plan.spec.target,
            "hosts": [
                {"name": h.name, "address": h.address, "units": list(h.units)} for h in plan.hosts
            ],
            "services_address": plan.services_address,
            "nodes": [
                {
                    "name": n.name,
                    "address": n.address,
                    "user": n.user,
                    "postgres": n.runs_postgres,
                    "etcd_member": n.etcd_member,
                }
                for n in plan.nodes
            ],
            "postgres": {
                "max_connections": plan.tuning.max_connections,
                "shared_buffers_kb": plan.tuning.shared_buffers_kb,
                "effective_cache_size_kb": plan.tuning.effective_cache_size_kb,
                "work_mem_kb": plan.tuning.work_mem_kb,
                "maintenance_work_mem_kb": plan.tuning.maintenance_work_mem_kb,
                "wal_buffers_kb": plan.tuning.wal_buffers_kb,
            },
            "pgbouncer": {
                "default_pool_size": plan.pool.default_pool_size,
                "reserve_pool_size": plan.pool.reserve_pool_size,
                "server_connections_max": plan.pool.server_connections_max,
            },
            "admission": {
                "maxconn_per_instance": plan.admission.maxconn_per_instance,
                "max_queue": plan.admission.max_queue,
                "queue_timeout_ms": plan.admission.queue_timeout_ms,
            },
            "state_dir": str(plan.paths.state_dir),
        },
    }
