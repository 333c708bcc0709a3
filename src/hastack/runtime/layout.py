"""Create the state directory tree with the right owner for every part."""

from __future__ import annotations

from hastack.render.pgbackrest import PGBACKREST_WORK_DIRS
from hastack.runtime.files import ensure_dir
from hastack.spec.plan import StackPlan


def prepare_root_dirs(plan: StackPlan) -> None:
    """Root's own part: what the CLI itself uses (locks, holds, drill reports, the CA),
    also for a stack deployed in containers, whose units' directories are in volumes."""
    paths = plan.paths
    ensure_dir(paths.state_dir, "root", 0o755)
    ensure_dir(paths.supervisor_dir, "root", 0o700)
    ensure_dir(paths.fencing_dir, "root", 0o700)
    ensure_dir(paths.logs_dir, "root", 0o700)
    ensure_dir(paths.drills_dir, "root", 0o755)
    ensure_dir(paths.tls_dir, "root", 0o755)


def prepare_dirs(plan: StackPlan) -> None:
    """Idempotent. Each node's directory belongs to its user (0700): other nodes, and the
    shared services, cannot read its data or config."""
    paths = plan.paths
    prepare_root_dirs(plan)
    ensure_dir(paths.nodes_dir, "root", 0o755)
    for node in plan.nodes:
        np = node.paths
        ensure_dir(np.root, node.user, 0o700)
        for sub in (np.socket_dir, np.log_dir, np.home):
            ensure_dir(sub, node.user, 0o700)
        if plan.backup_enabled and node.runs_postgres:
            ensure_dir(np.pgbackrest_dir, node.user, 0o700)
            for work in PGBACKREST_WORK_DIRS:
                ensure_dir(np.pgbackrest_dir / work, node.user, 0o700)
    ensure_dir(paths.state_dir / "services", "root", 0o755)
    for service, user in plan.service_users.items():
        ensure_dir(paths.service(service), user, 0o700)
    ensure_dir(paths.redis_data, plan.service_users["redis"], 0o700)
    if plan.monitoring_enabled:
        monitor = plan.service_users["monitor"]
        for path in (paths.prometheus_data, paths.alertmanager_data):
            ensure_dir(path, monitor, 0o700)
        ensure_dir(paths.node_exporter_textfiles, "root", 0o755)
    if plan.backup_enabled:
        backup = plan.service_users["backup"]
        for path in (paths.backup_repo, paths.backup_work_dir, paths.backup_scratch_dir):
            ensure_dir(path, backup, 0o700)
        for work in PGBACKREST_WORK_DIRS:
            ensure_dir(paths.backup_work_dir / work, backup, 0o700)
