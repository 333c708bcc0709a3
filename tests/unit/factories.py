"""Small builders for unit tests: specs from YAML text, fixed secrets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hastack.render.programs import stack_programs
from hastack.runtime.snapshot import (
    AppInstanceState,
    BackendServer,
    EtcdMember,
    PgMember,
    ServiceProbe,
    StackSnapshot,
)
from hastack.runtime.supervisor import ProcessInfo
from hastack.spec import LoadedSpec, MachineFacts, StackSpec, derive_plan, load_spec
from hastack.spec.secrets import INITIAL_VALUES, Secrets


def fixed_secrets() -> Secrets:
    """Deterministic secrets so rendered files can be compared with golden files."""
    values = {name: f"{name}-VALUE" for name in Secrets.names()}
    return Secrets(**{**values, **INITIAL_VALUES})


def load_text(tmp_path: Path, text: str, machine: MachineFacts | None = None) -> LoadedSpec:
    path = tmp_path / "hastack.yaml"
    path.write_text(text)
    return load_spec(path, machine)


def healthy_snapshot(**changes: object) -> StackSnapshot:
    """A snapshot of a healthy default stack; `changes` replace fields."""
    plan = derive_plan(StackSpec())
    programs = tuple(
        ProcessInfo(
            group=p.group,
            name=p.name,
            state="RUNNING",
            pid=100 + i,
            uptime_s=60,
            description="pid 1, uptime 0:01:00",
        )
        for i, p in enumerate(stack_programs(plan))
    )
    members = (
        PgMember("pg1", "127.0.10.1", 5432, "leader", "running", 1, None, 201),
        PgMember("pg2", "127.0.10.2", 5432, "sync_standby", "streaming", 1, 0, 202),
        PgMember("pg3", "127.0.10.3", 5432, "replica", "streaming", 1, 0, 203),
    )
    haproxy = tuple(
        BackendServer(backend, server, "UP" if up else "DOWN", up, 0)
        for backend, server, up in [
            ("pg_primary", "pg1", True),
            ("pg_primary", "pg2", False),
            ("pg_primary", "pg3", False),
            ("pg_replicas", "pg1", False),
            ("pg_replicas", "pg2", True),
            ("pg_replicas", "pg3", True),
        ]
    )
    snap = StackSnapshot(
        plan=plan,
        taken_at=0.0,
        supervisor_running=True,
        programs=programs,
        etcd=tuple(
            EtcdMember(f"etcd{i}", f"http://127.0.10.{i}:2379", True, i == 1) for i in (1, 2, 3)
        ),
        leader_key="pg1",
        leader_key_error=None,
        members=members,
        haproxy=haproxy,
        haproxy_error=None,
        pgbouncer=ServiceProbe(ok=True, detail={"pools": []}),
        redis=ServiceProbe(ok=True, detail={}),
        app=tuple(AppInstanceState(i.name, i.url, True, "UP") for i in plan.app_instances),
    )
    return replace(snap, **changes)  # type: ignore[arg-type]
