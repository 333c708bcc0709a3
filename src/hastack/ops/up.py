"""`hastack up`: bring a stack to its spec, in dependency order, waiting for real readiness.

Idempotent: a second run finds every file equal and every program running, and says so. When
supervisord died and left its programs running, `up` takes them over (ops/adopt.py) instead
of starting a second set beside them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import psycopg

from hastack.demo.migrations import demo_migrations
from hastack.errors import HastackError
from hastack.ops.adopt import adopt_orphans
from hastack.ops.backup import (
    ensure_first_backup,
    ensure_stanza,
    refuse_undecryptable,
    resume_archiving,
)
from hastack.ops.cluster_restore import UNFINISHED
from hastack.ops.verify import verify_backup
from hastack.runtime import holds, secret_store
from hastack.runtime.apptier import (
    app_servers,
    drain_quietly,
    instance_ready,
    prepare_http,
    reload_haproxy,
    replace_rolling,
    rolling_restart,
)
from hastack.runtime.cluster_restore import holds_data
from hastack.runtime.configs import RenderedFile, write_configs
from hastack.runtime.database import ensure_database_when_ready
from hastack.runtime.dcs import converge_dcs
from hastack.runtime.files import write_atomic
from hastack.runtime.health import (
    data_tier,
    etcd_quorum_reached,
    members_seen,
    replicas_streaming,
)
from hastack.runtime.hostlab import lab_exists
from hastack.runtime.installed import installed_at, running_older_code
from hastack.runtime.layout import prepare_dirs
from hastack.runtime.lifecycle import ensure_started
from hastack.runtime.locks import exclusive
from hastack.runtime.migrations import apply_migrations
from hastack.runtime.ownership import Marker, claim_state_dir, ensure_users, require_features
from hastack.runtime.preflight import preflight
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.replica_repair import Member, RepairState, plan_repairs
from hastack.runtime.snapshot import StackSnapshot
from hastack.runtime.stack import Stack
from hastack.runtime.standby import (
    adopt_primary_secrets,
    is_standby,
    issue_primary_repo_certs,
    primary_reachable,
    require_primary_secrets,
    write_trusted_ca,
)
from hastack.runtime.tls import ensure_node_tls
from hastack.spec import roles
from hastack.spec.names import RO_BACKEND, RW_BACKEND

if TYPE_CHECKING:
    from hastack.render.program import Program

T = TypeVar("T")

RELOAD_SIGNALS = {"patroni": "HUP", "pgbouncer": "HUP"}
"""How each component picks up a changed config without a restart (Redis needs a restart)."""

STANDBY_HOLD = "standby-cluster"

HOLD_S = 900.0
"""The longest `up` keeps the watcher still (a hold ends earlier when `up` ends or dies)."""


@dataclass
class UpResult:
    elapsed_s: float = 0.0
    created_users: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    """Processes a dead supervisord left running, now supervised."""
    dcs_patch: dict[str, Any] = field(default_factory=dict)
    ready_at_s: dict[str, float] = field(default_factory=dict)
    """Seconds from the start of `up` until each readiness milestone."""
    leader: str | None = None
    standby_of: str | None = None
    """The primary stack this one replicates from, while it is a standby cluster."""
    migrations: list[str] = field(default_factory=list)
    first_backup: str | None = None
    """The label of the full backup this run took (a stack's first)."""

    @property
    def nothing_changed(self) -> bool:
        return not (
            self.created_users
            or self.changed_files
            or self.started
            or self.reloaded
            or self.adopted
            or self.dcs_patch
        )


class _Run:
    """State of one `up` run: the stack, its clock and what it has done so far."""

    def __init__(
        self, stack: Stack, progress: Progress, applied_live: frozenset[str] = frozenset()
    ) -> None:
        self.stack = stack
        self.plan = stack.plan
        self.progress = progress
        self.sup = stack.supervisor
        self.t0 = stack.clock.monotonic()
        self.result = UpResult()
        self.repair = RepairState()
        self.applied_live = applied_live
        self.standby = stack.plan.standby is not None
        """The cluster replicates from another region: nothing writes here (no app tier,
        no migrations, no backups) until it is promoted."""

    def since(self) -> float:
        return self.stack.clock.monotonic() - self.t0

    def milestone(self, name: str, message: str) -> None:
        self.result.ready_at_s[name] = round(self.since(), 2)
        self.progress.done(f"{message} ({self.since():.1f} s)")

    def snapshot(self, services: bool = False) -> StackSnapshot:
        return self.stack.snapshot(services=services)

    def wait(
        self, check: Callable[[], tuple[T | None, str]], what: str, timeout_s: float, hint: str
    ) -> T:
        self.progress.step(f"waiting for {what}")
        return self.stack.wait(check, what=what, timeout_s=timeout_s, interval_s=0.2, hint=hint)

    def start(self, programs: list[Program]) -> None:
        started = ensure_started(self.sup, programs)
        if started:
            self.progress.step("starting " + ", ".join(started))
        self.result.started += started


def up(
    stack: Stack,
    spec_file: Path | None = None,
    progress: Progress | None = None,
    applied_live: frozenset[str] = frozenset(),
) -> UpResult:
    """Bring `stack` to its spec. `spec_file`: the spec it was loaded from; a copy is kept
    in the state directory for the installed CLI and the watcher. `applied_live`: programs
    (by name) whose changed config the caller already applied to the running process, so
    they are neither reloaded nor restarted (a secret rotation: Redis took its new password
    through ACL SETUSER and must not restart)."""
    _refuse_another_target(stack)
    run = _Run(stack, progress or NullProgress(), applied_live)
    preflight(stack.plan)
    require_primary_secrets(stack.plan)
    run.progress.step(f"preparing {stack.plan.paths.state_dir}")
    marker = claim_state_dir(stack.plan)
    require_features(stack.plan, marker)
    with exclusive(stack.plan.paths.up_lock, "hastack up", 900, run.progress, stack.clock):
        _refuse_after_an_unfinished_restore(stack)
        _refuse_when_superseded(stack)
        _prepare(run, marker, spec_file)
        # up stops and starts programs itself (and checks PgBouncer's config with a dry
        # start as its user): the watcher must not take that for a dead leader or an orphan,
        # nor start what up is about to start.
        with stack.hold(HOLD_S, "hastack up"):
            files = _render_and_write(run)
            was_running = _ensure_supervisor(run)
            _start_data_tier(run)
            _start_services(run)
            if was_running:
                reloaded = _reload_changed(run, files)
                restarted = _restart_older_code(run)
                if reloaded or restarted:
                    _wait_services(run)
                _restart_pending(run, files)
            # After any restart a changed setting needed: archiving may just have been
            # turned on (a stack from before backups).
            if stack.plan.backup_enabled and not run.standby:
                _start_backups(run)
            if stack.plan.monitoring_enabled:
                _start_monitoring(run)
            _wait_all_running(run)
    run.result.elapsed_s = round(run.since(), 2)
    return run.result


def _refuse_another_target(stack: Stack) -> None:
    target = stack.plan.spec.target
    if target == "systemd" and lab_exists(stack.plan):
        return  # its hosts are simulated here (`hastack lab up`)
    if target != "local":
        raise HastackError(
            f"stack {stack.name!r} has target {target}: `hastack up` runs target local, on "
            "this machine, and nothing was started",
            f"render it for {target} with `hastack render {target} --out DIR`, or set "
            "target: local"
            + (
                "; or simulate its hosts on this machine first: `hastack lab up`"
                if target == "systemd"
                else ""
            ),
        )


def _refuse_when_superseded(stack: Stack) -> None:
    """Its standby cluster was promoted: the data has moved on there. Started again, this
    stack would be a second primary of a database that diverged."""
    marker = stack.plan.paths.superseded
    if marker.is_file():
        raise HastackError(
            f"stack {stack.name!r} was superseded: its standby cluster was promoted "
            f"({marker.read_text(encoding='utf-8').strip()}); started again it would be a "
            "second primary",
            f"destroy it and make it a standby of the promoted stack; or, if that one was "
            f"discarded, remove {marker}",
        )


def _refuse_after_an_unfinished_restore(stack: Stack) -> None:
    """A cluster restore that failed half way left the DCS empty: Patroni started now would
    create a new, empty cluster. Only the restore (again) or the operator goes on."""
    unfinished = holds.persistent(stack.plan.paths.holds_dir, UNFINISHED)
    if unfinished is not None:
        raise HastackError(
            "a cluster restore did not finish: `up` would start Patroni on an empty DCS "
            "and create a new, empty cluster",
            f"run `hastack restore --target cluster ...` again; or put the data set aside back "
            f"(docs/backups.md#cluster-restore) and remove {unfinished}",
        )


def _prepare(run: _Run, marker: Marker, spec_file: Path | None) -> None:
    plan = run.plan
    run.result.created_users = ensure_users(plan, marker)
    prepare_dirs(plan)
    adopt_primary_secrets(plan)
    secret_store.load_or_create(plan.paths.secrets_dir)
    ensure_node_tls(plan)
    write_trusted_ca(plan)
    issue_primary_repo_certs(plan)
    if plan.app_instances:
        prepare_http(plan)
    if spec_file is not None and spec_file.resolve() != plan.paths.applied_spec:
        text = spec_file.read_text(encoding="utf-8")
        header = (
            f"# Applied by `hastack up` from {spec_file.resolve()}. The installed CLI and the\n"
            "# watcher reach the stack through this copy; edit the original, then `up`.\n"
        )
        body = text if text.startswith("# Applied by") else header + text
        write_atomic(plan.paths.applied_spec, body, "root", 0o600)


def _render_and_write(run: _Run) -> list[RenderedFile]:
    run.progress.step("rendering and checking configs (haproxy -c, patroni, pgbouncer)")
    changed, total = write_configs(run.plan, run.stack.secrets)
    run.result.changed_files = [str(f.path) for f in changed]
    run.progress.done(f"configs written ({len(changed)} changed of {total})")
    return changed


def _ensure_supervisor(run: _Run) -> bool:
    """Start supervisord, or make a running one pick up a changed config; take over what a
    dead supervisord left running. True if supervisord was already running."""
    sup = run.sup
    if not sup.is_running():
        run.progress.step("starting supervisord")
        sup.start_daemon()
        run.result.adopted = adopt_orphans(run.stack, run.progress)
        return False
    added, changed, removed = sup.reload_config()
    for group in removed:
        # An app instance scaled away: no new requests first, then stop it.
        drain_quietly(run.stack, group)
        sup.stop_group(group)
        sup.remove_group(group)
    for group in added:
        sup.add_group(group)
    run.result.adopted = adopt_orphans(run.stack, run.progress)
    _replace_changed_groups(run, changed)
    return True


def _replace_changed_groups(run: _Run, changed: list[str]) -> None:
    """A changed program definition applies only to a re-added group. Services are simply
    replaced; nodes one at a time, replicas before the leader, each back (etcd quorum,
    Patroni streaming) before the next, so the cluster keeps quorum and a leader."""
    plan, sup, stack = run.plan, run.sup, run.stack
    node_names = {n.name for n in plan.nodes}
    app_names = {i.name for i in plan.app_instances}
    leader = stack.leader()
    nodes = sorted((g for g in changed if g in node_names), key=lambda g: g == leader)
    for group in (g for g in changed if g not in node_names | app_names):
        sup.stop_group(group)
        sup.remove_group(group)
        sup.add_group(group)
    apps = [p for p in stack.programs("app") if p.group in changed]
    if apps and not run.standby:  # a standby cluster's instances stay stopped
        run.progress.step("applying changed app definitions, one instance at a time")
        replace_rolling(stack, apps, run.progress)
    for group in nodes:
        run.progress.step(f"applying the changed program definition of {group}")
        programs = stack.programs(group=group)
        for program in sorted(programs, key=lambda p: p.component != "patroni"):
            sup.stop(program.process_name)  # Patroni before its etcd member
        sup.remove_group(group)
        sup.add_group(group)
        run.start(sorted(programs, key=lambda p: p.component != "etcd"))
        run.wait(
            lambda: _replicas_streaming(run),
            f"{group} back in the cluster",
            timeout_s=180,
            hint=f"hastack logs {group} patroni",
        )


def _start_data_tier(run: _Run) -> None:
    plan, stack = run.plan, run.stack
    run.start(stack.programs("etcd"))
    run.wait(
        lambda: etcd_quorum_reached(run.snapshot()),
        "etcd quorum",
        timeout_s=30,
        hint="hastack logs pg1 etcd",
    )
    run.milestone("etcd_quorum", "etcd has quorum")
    # pgBackRest's servers before PostgreSQL: a starting replica fetches WAL through them.
    run.start(stack.programs("pgbackrest"))
    _refuse_an_empty_cluster_over_backups(run)

    _require_the_primary_for_a_first_clone(run)
    run.start(stack.programs("link"))
    run.start(stack.programs("patroni"))
    # A standby leader first copies the primary (pg_basebackup across the link).
    leader = run.wait(
        lambda: _leader(run),
        "a Patroni leader",
        timeout_s=300 if run.standby else 90,
        hint="hastack logs pg1 patroni",
    )
    run.result.leader = leader
    run.standby = is_standby(stack, leader)
    _hold_what_a_standby_does_not_run(run)
    if run.standby and plan.standby is not None:
        run.result.standby_of = plan.standby.primary_name
        run.milestone(
            "leader", f"{leader} is the standby leader, streaming from {plan.standby.primary_name}"
        )
    else:
        run.milestone("leader", f"{leader} is the leader")

    if not run.standby:
        # Right after a promotion the leader may refuse a connection for a moment.
        ensure_database_when_ready(stack, leader, timeout_s=10)
    run.result.dcs_patch = converge_dcs(stack, leader)
    if run.result.dcs_patch:
        run.progress.done(f"Patroni dynamic config updated: {sorted(run.result.dcs_patch)}")
    if plan.app_is_demo and plan.app_instances and not run.standby:
        applied = apply_migrations(stack, leader, demo_migrations())
        run.result.migrations = applied
        if applied:
            run.progress.done(f"migrations applied: {', '.join(applied)}")

    if len(plan.postgres_nodes) > 1:
        run.wait(
            lambda: _replicas_streaming(run),
            "replicas streaming",
            timeout_s=180,
            hint="hastack status; hastack logs pg2 patroni",
        )
        run.milestone(
            "replicas",
            "replicas cascading from the standby leader"
            if run.standby
            else "replicas streaming, synchronous standby in place",
        )


def _require_the_primary_for_a_first_clone(run: _Run) -> None:
    """A new standby cluster clones its primary: say so at once when the primary does not
    answer (Patroni would only retry pg_basebackup until `up` gives up)."""
    standby = run.plan.standby
    if standby is None or any(holds_data(n) for n in run.plan.postgres_nodes):
        return
    reachable = primary_reachable(run.stack)
    if reachable is not True:
        raise HastackError(
            f"the primary stack {standby.primary_name!r} does not answer at "
            f"{standby.primary_host}:{standby.primary_port} ({reachable}): a new standby "
            "cluster is cloned from it",
            "bring the primary up first (hastack -c PRIMARY_SPEC up), then this one",
        )


def _hold_what_a_standby_does_not_run(run: _Run) -> None:
    """The watcher starts every stopped program again; in a standby cluster the app
    instances and the backup scheduler stay stopped until it is promoted: a persistent hold
    scoped to them (removed by the `up` that finds the cluster promoted)."""
    directory = run.plan.paths.holds_dir
    if not run.standby:
        holds.remove_persistent(directory, STANDBY_HOLD)
        return
    idle = [p.process_name for p in run.stack.programs() if p.component in ("app", "backup")]
    holds.place_persistent(
        directory, STANDBY_HOLD, "a standby cluster: no app tier or backups until promoted", idle
    )


def _refuse_an_empty_cluster_over_backups(run: _Run) -> None:
    """Every node's data directory empty while the repository holds backups of this stack:
    the cluster was lost. Patroni would now create a new, empty cluster (whose WAL would not
    even archive into the stanza: another system id), and the scheduler would back it up as
    if nothing had happened. Stop before that; the supervisor and etcd are up for the
    restore."""
    plan = run.plan
    if not plan.backup_enabled or any(holds_data(n) for n in plan.postgres_nodes):
        return
    try:
        info = run.stack.pgbackrest().info()
    except HastackError as exc:
        raise HastackError(
            f"every node's data directory is empty and the backup repository cannot be read "
            f"({exc.what}): starting Patroni could create a new, empty cluster over a lost one",
            "hastack logs backup-repo; then `hastack up` again",
            exc.details,
        ) from None
    refuse_undecryptable(run.stack, info)  # a first `up` reads an empty, readable repository
    good = [b for b in info.backups if not b.error]
    if not good:
        return
    raise HastackError(
        f"every node's data directory is empty, but the backup repository holds "
        f"{len(good)} backups of {plan.name} (the newest {good[-1].label}): starting "
        "Patroni now would create a new, empty cluster",
        "hastack restore --target cluster --latest (see docs/backups.md#cluster-restore)",
    )


def _leader(run: _Run) -> tuple[str | None, str]:
    snap = run.snapshot()
    return data_tier(snap).leader, f"leader key {snap.leader_key!r}; members {members_seen(snap)}"


def _replicas_streaming(run: _Run) -> tuple[bool | None, str]:
    snap = run.snapshot()
    _repair_failed_replicas(run, snap, data_tier(snap).leader)
    plan = run.plan
    # A standby cluster has no synchronous standby (its leader is itself a replica).
    sync = plan.spec.postgres.synchronous_mode and not run.standby
    return replicas_streaming(snap, len(plan.postgres_nodes) - 1, sync)


def _repair_failed_replicas(run: _Run, snap: StackSnapshot, leader: str | None) -> None:
    """`up` holds the watcher, so it does what the watcher would: a replica whose
    PostgreSQL keeps failing to start is rebuilt (runtime/replica_repair.py)."""
    members = tuple(Member(m.name, m.role, m.state) for m in snap.members)
    repairs, run.repair = plan_repairs(run.repair, run.since(), members, leader)
    for repair in repairs:
        run.progress.step(repair.sentence)
        try:
            code, text = run.stack.patroni(repair.node).reinitialize()
        except HastackError as exc:
            code, text = 0, exc.what
        if code != 200:
            run.progress.done(f"Patroni did not rebuild {repair.node} ({code}): {text[:200]}")


def _start_services(run: _Run) -> None:
    plan, stack = run.plan, run.stack
    run.start(stack.programs("haproxy"))
    _wait_haproxy(run)
    run.milestone("haproxy", "HAProxy routes to the leader and replicas")
    run.start(stack.programs("pgbouncer"))
    _wait_pgbouncer(run)
    run.milestone("pgbouncer", "DATABASE_URL answers")
    run.start(stack.programs("redis"))
    _wait_redis(run)
    run.milestone("redis", "Redis answers")
    if plan.app_instances and not run.standby:
        run.start(stack.programs("app"))
        _wait_app(run)
        run.milestone("app", f"{len(plan.app_instances)} app instances ready behind HAProxy")
    run.start(stack.programs("fencer"))


def _start_backups(run: _Run) -> None:
    """pgBackRest's servers, the stanza (WAL archiving checked end to end), a first full
    backup when the repository has none, then the scheduler."""
    stack = run.stack
    info = ensure_stanza(stack, run.progress)
    # A cause fixed since archiving failed (the passphrase put back): archive now, so the
    # stack is healthy when `up` ends. What still fails is left to `status` to report.
    resume_archiving(stack, run.progress)
    first = ensure_first_backup(stack, info, run.progress)
    if first is not None:
        run.result.first_backup = first.label
        checked = verify_backup(stack, first.label, run.progress)
        if not checked.ok:
            raise HastackError(
                f"the first full backup {first.label} did not verify: "
                + "; ".join(checked.problems),
                f"hastack verify-backup {first.label}; hastack logs backup-repo",
            )
        run.milestone(
            "backup", f"first full backup {first.label} taken and verified ({checked.total_s} s)"
        )
    run.start(stack.programs("backup"))


def _start_monitoring(run: _Run) -> None:
    """Prometheus, Alertmanager, the receiver and the exporters; Prometheus ready."""
    run.start(run.stack.programs("monitor"))
    plan = run.plan

    def answers(url: str) -> Callable[[], tuple[bool | None, str]]:
        """200 to the monitoring login, over HTTPS with the stack's CA."""

        def check() -> tuple[bool | None, str]:
            try:
                answer = httpx.get(
                    url,
                    auth=(roles.MONITORING_WEB, run.stack.secrets.monitoring_password),
                    verify=str(plan.paths.ca_cert),
                    timeout=2,
                )
            except httpx.HTTPError as exc:
                return None, f"{type(exc).__name__}: {exc}"
            ok = answer.status_code == 200
            return (True, "") if ok else (None, f"HTTP {answer.status_code}")

        return check

    run.wait(
        answers(f"{plan.prometheus_url}/-/ready"),
        "Prometheus",
        60,
        "hastack logs monitor prometheus",
    )
    run.wait(
        answers(f"{plan.dashboard_url}/"), "the dashboard", 60, "hastack logs monitor dashboard"
    )
    run.milestone(
        "monitoring", f"Prometheus, Alertmanager and the dashboard at {plan.monitor_address}"
    )


def _wait_services(run: _Run) -> None:
    """After reloads: every service answers again."""
    _wait_haproxy(run)
    _wait_pgbouncer(run)
    _wait_redis(run)
    if run.plan.app_instances and not run.standby:
        _wait_app(run)
    run.progress.done("services answer after the reload")


def _wait_app(run: _Run) -> None:
    run.wait(lambda: _app_in_rotation(run), "app instances in rotation", 60, "hastack logs app1")


def _app_in_rotation(run: _Run) -> tuple[bool | None, str]:
    plan, stack = run.plan, run.stack
    not_ready = [i.name for i in plan.app_instances if not instance_ready(stack, i)]
    servers = app_servers(stack)
    down = [i.name for i in plan.app_instances if not (i.name in servers and servers[i.name].up)]
    if not not_ready and not down:
        return True, ""
    return None, f"not ready: {not_ready}; not up in HAProxy: {down}"


def _wait_haproxy(run: _Run) -> None:
    run.wait(lambda: _haproxy_routes(run), "HAProxy backends", 20, "hastack logs haproxy")


def _wait_pgbouncer(run: _Run) -> None:
    run.wait(
        lambda: _pgbouncer_query(run), "a query through PgBouncer", 20, "hastack logs pgbouncer"
    )


def _wait_redis(run: _Run) -> None:
    run.wait(lambda: _redis_ping(run), "Redis", 20, "hastack logs redis")


def _wait_all_running(run: _Run) -> None:
    # supervisord calls a program RUNNING only after startsecs; wait so `status` agrees.
    run.wait(lambda: _all_running(run), "every program RUNNING", 15, "hastack status")


def _all_running(run: _Run) -> tuple[bool | None, str]:
    # A standby cluster runs no app instance and no backup scheduler until promoted.
    idle = {p.process_name for p in run.stack.programs() if p.component in ("app", "backup")}
    skip = idle if run.standby else set()
    pending = [
        p.process_name for p in run.sup.processes() if not p.running and p.process_name not in skip
    ]
    return (None, f"not yet running: {pending}") if pending else (True, "")


def _haproxy_routes(run: _Run) -> tuple[bool | None, str]:
    snap = run.snapshot(services=True)
    if snap.haproxy_error:
        return None, snap.haproxy_error
    tier = data_tier(snap)
    rw = [s.server for s in snap.haproxy if s.backend == RW_BACKEND and s.up]
    ro = [s.server for s in snap.haproxy if s.backend == RO_BACKEND and s.up]
    seen = f"read-write up: {rw}, read-only up: {ro}"
    if run.standby:
        # Patroni answers /primary with 503 on a standby leader, /replica with 200.
        done = not rw and len(ro) == len(tier.streaming)
        return (True, seen) if done else (None, seen)
    if tier.leader and rw == [tier.leader] and len(ro) == len(tier.streaming):
        return True, seen
    return None, seen


def _pgbouncer_query(run: _Run) -> tuple[bool | None, str]:
    url = run.stack.urls()["DATABASE_URL_RO" if run.standby else "DATABASE_URL"]
    try:
        # prepare_threshold=None: transaction pooling cannot keep prepared statements.
        with psycopg.connect(url, connect_timeout=2, prepare_threshold=None) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return None, str(exc).strip()[:200]
    return True, ""


def _redis_ping(run: _Run) -> tuple[bool | None, str]:
    try:
        run.stack.redis().probe()
    except HastackError as exc:
        return None, exc.what
    return True, ""


def _reload_changed(run: _Run, changed: list[RenderedFile]) -> bool:
    """Programs that kept running while their config changed pick the change up here.
    True if any was reloaded or restarted."""
    stack = run.stack
    programs = {p.name: p for p in stack.programs()}
    for name in sorted({reader for f in changed for reader in f.readers}):
        if name in run.result.started or name in run.applied_live:
            continue
        if name == "app":
            if run.standby:
                continue
            running = [p for p in stack.programs("app") if p.name not in run.result.started]
            rolling_restart(stack, running, run.progress)
            run.result.reloaded += [p.name for p in running]
            continue
        program = programs[name]
        signal_name = RELOAD_SIGNALS.get(program.component)
        if program.component == "haproxy":
            reload_haproxy(stack)
        elif signal_name:
            run.sup.signal(program.process_name, signal_name)
        else:
            run.sup.stop(program.process_name)
            run.sup.start(program.process_name)
        run.result.reloaded.append(name)
    if run.result.reloaded:
        run.progress.done("reloaded " + ", ".join(run.result.reloaded))
    return bool(run.result.reloaded)


def _restart_pending(run: _Run, changed: list[RenderedFile]) -> None:
    """A reloaded Patroni config that changed a setting PostgreSQL reads only at start
    (archive_mode, shared_buffers, ...) leaves the member "pending restart": restart them
    in place, replicas first, each back streaming before the next."""
    stack = run.stack
    patronis = {p.name for p in stack.programs("patroni")}
    if not any(f.program in patronis for f in changed):
        return
    # Patroni applies a reload at its next loop.
    stack.clock.sleep(2 * run.plan.spec.patroni.loop_wait_s + 1)
    leader = stack.leader()
    pending = []
    for node in run.plan.postgres_nodes:
        try:
            if stack.patroni(node.name).member().get("pending_restart"):
                pending.append(node.name)
        except HastackError:
            continue
    for name in sorted(pending, key=lambda n: n == leader):
        run.progress.step(f"restarting PostgreSQL on {name} (a changed setting needs it)")
        code, text = stack.patroni(name).restart()
        if code != 200:
            raise HastackError(
                f"Patroni did not restart PostgreSQL on {name} ({code}): {text}",
                f"hastack logs {name} patroni",
            )
        run.result.reloaded.append(f"{name}-postgres")
        run.wait(
            lambda: _replicas_streaming(run),
            f"{name} back in the cluster",
            timeout_s=180,
            hint=f"hastack logs {name} patroni",
        )


def _restart_older_code(run: _Run) -> bool:
    """After hastack was installed again (`make up` of a newer checkout), the watcher, the
    backup scheduler and the app instances still run the old code: restart them (the
    instances one at a time).
    True if any was restarted."""
    stack = run.stack
    installed = installed_at(stack.plan.spec.binaries.hastack_python)
    if installed is None:
        return False
    receiver = [p for p in stack.programs("monitor") if p.name == "alert-receiver"]
    ours = stack.programs("fencer") + stack.programs("app") + stack.programs("backup") + receiver
    older = running_older_code(run.sup, ours, installed)
    apps = [p for p in older if p.component == "app" and p.name not in run.result.reloaded]
    if apps:
        run.progress.step("app instances run an older hastack: restarting them one at a time")
        rolling_restart(stack, apps, run.progress)
    for program in (p for p in older if p.component in ("fencer", "backup", "monitor")):
        run.sup.stop(program.process_name)
        run.sup.start(program.process_name)
    restarted = [p.name for p in older if p.name not in run.result.reloaded]
    run.result.reloaded += restarted
    if restarted:
        run.progress.done("restarted on the newly installed hastack: " + ", ".join(restarted))
    return bool(restarted)
