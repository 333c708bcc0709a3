from __future__ import annotations

from pathlib import Path

from hastack.ops.plan import plan_as_dict, plan_sections
from hastack.spec import StackSpec, derive_plan
from hastack.spec.model import AppSpec, EtcdSpec, HttpSpec, PgBouncerSpec, PostgresSpec


def test_default_addresses_users_and_paths() -> None:
    plan = derive_plan(StackSpec())
    assert [(n.name, n.address, n.user, n.etcd_member) for n in plan.nodes] == [
        ("pg1", "127.0.10.1", "hs-demo-pg1", "etcd1"),
        ("pg2", "127.0.10.2", "hs-demo-pg2", "etcd2"),
        ("pg3", "127.0.10.3", "hs-demo-pg3", "etcd3"),
    ]
    assert plan.services_address == "127.0.10.100"
    assert plan.paths.state_dir == Path("/var/lib/hastack/demo")
    assert plan.node("pg2").paths.pgdata == Path("/var/lib/hastack/demo/nodes/pg2/pgdata")
    assert plan.service_users == {
        "haproxy": "hs-demo-haproxy",
        "pgbouncer": "hs-demo-pgbouncer",
        "redis": "hs-demo-redis",
        "app": "hs-demo-app",
        "backup": "hs-demo-backup",
        "monitor": "hs-demo-monitor",
    }
    assert plan.backup_address == "127.0.10.105"
    assert plan.monitor_address == "127.0.10.106"
    assert plan.prometheus_url == "https://127.0.10.106:9090"
    assert [(a.name, a.address, a.port) for a in plan.app_instances] == [
        ("app1", "127.0.10.111", 8000),
        ("app2", "127.0.10.112", 8000),
    ]
    assert plan.app_is_demo and plan.app_url == "https://127.0.10.100:8443"
    assert plan.pgbouncer_databases == {"app": 5000, "app_ro": 5001}


def test_memory_formulas() -> None:
    t = derive_plan(StackSpec(postgres=PostgresSpec(memory_mb=1024))).tuning
    assert t.shared_buffers_kb == 256 * 1024  # 25%
    assert t.effective_cache_size_kb == 768 * 1024  # 75%
    assert t.max_connections == 100  # 2 pools x (25 + 5) + 40 direct
    assert t.work_mem_kb == (1024 * 1024 - 256 * 1024) // 100 // 2
    assert t.maintenance_work_mem_kb == 32 * 1024  # memory / 32
    assert t.wal_buffers_kb == 8 * 1024  # shared_buffers / 32


def test_large_node_caps_wal_buffers_and_maintenance_work_mem() -> None:
    t = derive_plan(StackSpec(postgres=PostgresSpec(memory_mb=128 * 1024))).tuning
    assert t.wal_buffers_kb == 16 * 1024
    assert t.maintenance_work_mem_kb == 2 * 1024 * 1024


def test_pool_follows_the_ten_to_one_guideline() -> None:
    pool = derive_plan(StackSpec(pgbouncer=PgBouncerSpec(max_client_conn=2000))).pool
    assert pool.default_pool_size == 100  # 2000 / 10 / 2 pools
    assert pool.server_connections_max == 2 * (100 + 5)


def test_explicit_values_win() -> None:
    spec = StackSpec(
        postgres=PostgresSpec(max_connections=300),
        pgbouncer=PgBouncerSpec(default_pool_size=40),
    )
    plan = derive_plan(spec)
    assert plan.tuning.max_connections == 300
    assert plan.pool.default_pool_size == 40


def test_etcd_members_beyond_postgres_nodes_get_witness_nodes() -> None:
    plan = derive_plan(StackSpec(postgres=PostgresSpec(nodes=2), etcd=EtcdSpec(members=3)))
    assert [(n.name, n.runs_postgres, n.etcd_member) for n in plan.nodes] == [
        ("pg1", True, "etcd1"),
        ("pg2", True, "etcd2"),
        ("dcs3", False, "etcd3"),
    ]
    assert len(plan.postgres_nodes) == 2
    assert len(plan.etcd_client_urls) == 3


def test_plan_output_shows_inputs_and_is_json_ready() -> None:
    plan = derive_plan(StackSpec())
    rows = {r.key: r for r in plan_sections(plan)["postgres"]}
    assert rows["shared_buffers"].value == "64 MB"
    assert rows["shared_buffers"].how == "25% of memory"
    assert rows["max_connections"].how == "pools 60 + direct 40"
    data = plan_as_dict(plan)
    assert data["derived"]["pgbouncer"]["default_pool_size"] == 25  # type: ignore[index]


def test_admission_defaults_to_twice_the_pool_and_one_round_of_queue() -> None:
    a = derive_plan(StackSpec()).admission
    assert a.maxconn_per_instance == 2 * AppSpec().db_pool_size == 20
    assert a.max_queue == 2 * 20  # two instances' worth
    assert a.queue_timeout_ms == 2000


def test_admission_follows_the_spec() -> None:
    spec = StackSpec(
        app=AppSpec(instances=3, db_pool_size=4, max_concurrent_requests=6),
        http=HttpSpec(max_queue=5, queue_timeout_ms=500),
    )
    a = derive_plan(spec).admission
    assert (a.maxconn_per_instance, a.max_queue, a.queue_timeout_ms) == (6, 5, 500)
    derived = derive_plan(StackSpec(app=AppSpec(instances=3, db_pool_size=4))).admission
    assert (derived.maxconn_per_instance, derived.max_queue) == (8, 24)
