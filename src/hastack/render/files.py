"""Every config file of a stack: path, content, owner and mode. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hastack.render.alerts import render_alert_rules
from hastack.render.app import render_app_config, render_app_env
from hastack.render.fencer import render_watcher_config
from hastack.render.haproxy import render_haproxy, render_haproxy_hold_lua
from hastack.render.monitoring import (
    render_alertmanager_config,
    render_dashboard_config,
    render_pgbouncer_exporter,
    render_postgres_queries,
    render_prometheus,
    render_redis_passwords,
    render_web_config,
)
from hastack.render.patroni import render_patroni
from hastack.render.pgbackrest import (
    render_node_pgbackrest,
    render_pgbackrest_pgpass,
    render_primary_repo_pgbackrest,
    render_repo_pgbackrest,
    render_restore_pgbackrest,
    render_scheduler_config,
)
from hastack.render.pgbouncer import render_pgbouncer, render_pgbouncer_auth
from hastack.render.programs import stack_programs
from hastack.render.redis import render_redis
from hastack.render.supervisord import render_supervisord
from hastack.spec.plan import StackPlan
from hastack.spec.secrets import S3Credentials, Secrets


@dataclass(frozen=True)
class RenderedFile:
    path: Path
    content: str
    owner: str
    """System user that must own the file (the process reading it runs as this user)."""
    program: str | None
    """The supervised program that reads it (None: supervisord's own config)."""
    mode: int = 0o600
    also_read_by: tuple[str, ...] = ()
    """Other programs that read it at start (each restarts when it changes)."""

    @property
    def readers(self) -> tuple[str, ...]:
        return ((self.program,) if self.program else ()) + self.also_read_by


def render_stack(
    plan: StackPlan,
    secrets: Secrets,
    s3: S3Credentials | None = None,
    namespaces: Mapping[str, str] | None = None,
    operator: str | None = None,
) -> list[RenderedFile]:
    """`s3`: the S3 repository's access key, when the spec has one (the operator's file).
    `namespaces` and `operator`: each program's network namespace, and the operator's
    address, when the hosts are simulated here (runtime/hostlab.py)."""
    files = [
        RenderedFile(
            path=node.paths.patroni_config,
            content=render_patroni(plan, node, secrets, operator=operator),
            owner=node.user,
            program=f"{node.name}-patroni",
        )
        for node in plan.postgres_nodes
    ]
    for node in plan.postgres_nodes:
        primary_repo = render_primary_repo_pgbackrest(plan, node)
        if primary_repo is not None:
            # A standby cluster's: read by each archive-get (nothing to reload).
            files.append(
                RenderedFile(node.paths.primary_repo_config, primary_repo, node.user, None)
            )
    users = plan.service_users
    files += [
        RenderedFile(
            plan.paths.haproxy_config, render_haproxy(plan, secrets), users["haproxy"], "haproxy"
        ),
        RenderedFile(
            plan.paths.pgbouncer_config, render_pgbouncer(plan), users["pgbouncer"], "pgbouncer"
        ),
        RenderedFile(
            plan.paths.pgbouncer_auth_file,
            render_pgbouncer_auth(plan, secrets),
            users["pgbouncer"],
            "pgbouncer",
        ),
        RenderedFile(plan.paths.redis_config, render_redis(plan, secrets), users["redis"], "redis"),
        RenderedFile(
            plan.paths.supervisor_config,
            render_supervisord(plan, stack_programs(plan), namespaces),
            "root",
            None,
        ),
    ]
    app_user = users.get("app")
    if app_user is not None:
        files += [
            # Read by every instance: "app" restarts them all (one at a time) when changed.
            RenderedFile(plan.paths.app_env, render_app_env(plan, secrets), app_user, "app"),
            RenderedFile(plan.paths.app_config, render_app_config(plan), app_user, "app"),
        ]
    if plan.backup_enabled:
        files += _backup_files(plan, secrets, s3)
    if plan.monitoring_enabled:
        files += _monitoring_files(plan, secrets)
    if plan.spec.haproxy.hold_new_connections_s:
        files.append(
            RenderedFile(
                plan.paths.haproxy_hold_lua, render_haproxy_hold_lua(), users["haproxy"], "haproxy"
            )
        )
    if plan.spec.fencing.enabled:
        files.append(
            RenderedFile(plan.paths.fencer_config, render_watcher_config(plan), "root", "fencer")
        )
    return files


def _backup_files(
    plan: StackPlan, secrets: Secrets, s3: S3Credentials | None
) -> list[RenderedFile]:
    files = []
    for node in plan.postgres_nodes:
        files += [
            RenderedFile(
                node.paths.pgbackrest_config,
                render_node_pgbackrest(plan, node),
                node.user,
                f"{node.name}-pgbackrest",
            ),
            # Read at each connection (nothing to reload).
            RenderedFile(
                node.paths.pgbackrest_pgpass,
                render_pgbackrest_pgpass(plan, node, secrets),
                node.user,
                None,
            ),
        ]
    user = plan.service_users["backup"]
    paths = plan.paths
    files += [
        RenderedFile(
            paths.backup_config, render_repo_pgbackrest(plan, secrets, s3), user, "backup-repo"
        ),
        RenderedFile(
            paths.backup_scheduler_config, render_scheduler_config(plan), user, "backup-scheduler"
        ),
        # Read by each restore (nothing to reload).
        RenderedFile(
            paths.backup_restore_config, render_restore_pgbackrest(plan, secrets, s3), user, None
        ),
    ]
    return files


def _monitoring_files(plan: StackPlan, secrets: Secrets) -> list[RenderedFile]:
    user = plan.service_users["monitor"]
    paths = plan.paths
    exporters = [f"{n.name}-postgres-exporter" for n in plan.postgres_nodes]
    return [
        RenderedFile(paths.prometheus_config, render_prometheus(plan), user, "prometheus"),
        RenderedFile(paths.alert_rules, render_alert_rules(), user, "prometheus"),
        # Read by both (Prometheus re-reads it at each request; Alertmanager too).
        RenderedFile(paths.monitor_web_config, render_web_config(plan, secrets), user, None),
        # Read at each request by Prometheus, Alertmanager and the receiver (no restart).
        RenderedFile(paths.monitor_password_file, secrets.monitoring_password + "\n", user, None),
        RenderedFile(
            paths.alertmanager_config, render_alertmanager_config(plan), user, "alertmanager"
        ),
        RenderedFile(paths.dashboard_config, render_dashboard_config(plan), user, "dashboard"),
        RenderedFile(
            paths.haproxy_stats_password_file, secrets.haproxy_stats_password + "\n", user, None
        ),
        RenderedFile(
            paths.pgbouncer_exporter_config,
            render_pgbouncer_exporter(plan, secrets),
            user,
            "pgbouncer-exporter",
        ),
        RenderedFile(
            paths.redis_exporter_passwords,
            render_redis_passwords(plan, secrets),
            user,
            "redis-exporter",
        ),
        # Read by every PostgreSQL exporter at start: each restarts when it changes.
        *(
            RenderedFile(path, content, user, exporters[0], also_read_by=tuple(exporters[1:]))
            for path, content in (
                (paths.postgres_exporter_queries, render_postgres_queries()),
                (paths.postgres_exporter_password, secrets.monitor_password + "\n"),
            )
        ),
    ]
