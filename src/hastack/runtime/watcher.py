"""The watcher process: observe -> decide -> act, one sentence per decision.

Every poll it (1) reads the leader from etcd and probes it, and fences a dead or stalled
leader or releases a key its holder can no longer renew (`fencing.decide`); (2) puts nodes it
took out of HAProxy back once they run as replicas; (3) starts programs that are down and
safe to start (`healing.plan_heal`): a fenced node returns, a stopped etcd member rejoins;
(4) runs `hastack up` when supervisord itself died, so its orphaned programs are taken over;
(5) every few seconds, asks Patroni to rebuild a replica that cannot start
(`replica_repair`) and unblocks WAL archiving stuck behind an older timeline's segment
(`archive_unblock`); (6) writes its heartbeat. Run by supervisord as
`<hastack python> -m hastack.runtime.watcher <state>/fencing/watcher.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import traceback
import xmlrpc.client
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from hastack.errors import HastackError
from hastack.polling import SYSTEM_CLOCK, Clock, WaitTimeout, poll, until
from hastack.runtime import archive_unblock, hastack_metrics, heartbeat, holds
from hastack.runtime.fencing import (
    Decision,
    Observation,
    WatcherConfig,
    WatchNode,
    WatchState,
    after_fence,
    after_release,
    decide,
    fence_scope,
    readmit,
)
from hastack.runtime.files import write_atomic
from hastack.runtime.healing import (
    HealInput,
    HealState,
    HealTimings,
    ProgramView,
    Waiting,
    host_return,
    node_fenced,
    node_returned,
    plan_heal,
)
from hastack.runtime.logline import say
from hastack.runtime.orphans import Identity, StackProcess, find_orphans, takeover_candidates
from hastack.runtime.probes import MemberInfo, probe_liveness, probe_member, probe_pg
from hastack.runtime.replica_repair import Member, RepairState, members_from_dcs, plan_repairs
from hastack.runtime.supervisor import Supervisor
from hastack.runtime.systemd_units import SystemdUnits, UnitsUnavailable
from hastack.spec.roles import PATRONI_REST
from hastack.tools.base import ToolResult, run_session
from hastack.tools.base import run as run_tool
from hastack.tools.etcd_api import EtcdClient, EtcdUnavailable
from hastack.tools.haproxy_api import HAProxyAdmin, HAProxyUnavailable
from hastack.tools.patroni_api import PatroniClient

FENCE_DEADLINE_S = 3.0
FENCE_COMMAND_TIMEOUT_S = 30.0
"""How long the operator's fence (or unfence) command may take; past it, not fenced."""
UNFENCE_RETRY_S = 10.0
RELEASE_DEADLINE_S = 8.0
RECOVER_BACKOFF_S = (30.0, 60.0, 120.0, 300.0)
ORPHAN_SCAN_S = 2.0
REPAIR_SCAN_S = 5.0
METRICS_S = 5.0
RECENT_DECISIONS = 25
"""How many of the latest decisions the dashboard is shown."""
LOG_ROTATE_BYTES = 5 * 1024 * 1024
SUPERVISOR_ERRORS = (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError, UnitsUnavailable)
ARCHIVE_PUSH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Unfenced:
    """How a command-fenced node's unfence command ended."""

    retry_at: float
    """When to run it again, should the node not be back by then."""
    ok: bool
    """Its host was brought back: probe it again."""


class Watcher:
    def __init__(self, config: WatcherConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.etcd = EtcdClient(
            config.etcd_urls,
            timeout_s=config.timings.probe_timeout_s,
            identity=config.etcd_identity,
        )
        self.haproxy = HAProxyAdmin(Path(config.haproxy_socket))
        self.by_systemd = config.manager == "systemd"
        self.sup: Supervisor | SystemdUnits = (
            SystemdUnits({p["process_name"]: p["unit"] for p in config.programs})
            if self.by_systemd
            else Supervisor(
                Path(config.supervisor_socket).with_name("supervisord.conf"),
                Path(config.supervisor_socket),
                Path(config.supervisor_pidfile),
                Path(sys.executable),
            )
        )
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.state = WatchState()
        self.heal_timings = HealTimings(no_leader_grace_s=config.timings.no_leader_grace_s)
        saved = self._load_state()
        # Survive a restart of the watcher: nodes out of HAProxy come back, fenced nodes
        # still return.
        self.routed_away: dict[str, list[str]] = saved.get("routed_away", {})
        self.heal = HealState(fenced={n: self.clock.monotonic() for n in saved.get("fenced", [])})
        self.parent = os.getppid()
        self.recover_attempts = 0
        self.next_recover = 0.0
        self.last: tuple[Any, ...] | None = None
        self.started_at = clock.wall()
        self.polls = 0
        self.failed_polls = 0
        self.last_error: tuple[float, str] | None = None
        self.waiting: list[Waiting] = []
        self.repair = RepairState()
        self.unblock = archive_unblock.UnblockState()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_DECISIONS)
        self.recent_changed = True
        self.unblock_pool = ThreadPoolExecutor(max_workers=1)
        self.unblocking: Future[None] | None = None
        self.log_lock = threading.Lock()
        self.fences: dict[str, int] = {}
        self.metrics_at = -METRICS_S
        self.repair_at = -REPAIR_SCAN_S
        self.noted: set[str] = set()
        self.identity = Identity.from_dict(config.identity)
        self.orphans: list[StackProcess] = []
        self.orphans_at = -ORPHAN_SCAN_S
        self.supervisord = "running"
        self.recovering: subprocess.Popen[bytes] | None = None
        self.unfenced: dict[str, Unfenced] = {}
        """Command-fenced nodes whose unfence command finished, until they run again as
        replicas: a failed one is tried again at `retry_at`, a host brought back is worth
        probing again."""
        self.unfence_noted: set[str] = set()
        self.host_pool = ThreadPoolExecutor(max_workers=1)
        self.unfencing: dict[str, tuple[Future[ToolResult], str]] = {}
        """Unfence commands under way (node -> the command's future, the sentence to log):
        run beside the poll, which must not stall for a slow cloud API while the rest of
        the stack may need it. (A fence runs inside the poll: the key is released only
        after it.)"""

    # --- observe -------------------------------------------------------------------------

    def observe(self) -> tuple[Observation, HealInput | None]:
        cfg = self.config
        t = self.clock.monotonic()
        held_all, held_scope = self._holds()
        programs = self._programs()
        try:
            leader, lease = self.etcd.get_with_lease(cfg.leader_key)
            dynamic = self.etcd.get(cfg.config_key)
            lease_age = self.etcd.lease_age_s(lease) if lease else None
        except EtcdUnavailable:
            # Keep probing the last known leader; decide() will not act on it without etcd.
            rest, member, pg = self.probe(cfg.node(self.state.leader or ""))
            obs = Observation(t=t, leader=None, etcd_ok=False, held=held_all, rest=rest, pg=pg)
            heal = (
                None
                if programs is None
                else HealInput(t, programs, False, None, held_all=held_all, held=held_scope)
            )
            return obs, heal
        paused = bool(dynamic and json.loads(dynamic).get("pause"))
        rest, member, pg = self.probe(cfg.node(leader) if leader else None)
        obs = Observation(
            t=t,
            leader=leader,
            etcd_ok=True,
            paused=paused,
            held=held_all,
            rest=rest,
            pg=pg,
            role=member.role,
            pg_state=member.pg_state,
            failsafe_active=member.failsafe_active,
            lease_age_s=lease_age,
        )
        heal = (
            None
            if programs is None
            else HealInput(t, programs, True, leader, paused, held_all, held_scope)
        )
        return obs, heal

    def probe(self, node: WatchNode | None) -> tuple[Any, MemberInfo, Any]:
        """Patroni's liveness and status and a PostgreSQL round trip, in parallel."""
        if node is None:
            return None, MemberInfo(), None
        timeout = self.config.timings.probe_timeout_s
        alive = self.pool.submit(probe_liveness, node, timeout)
        member = self.pool.submit(probe_member, node, timeout)
        pg = self.pool.submit(probe_pg, node, timeout)
        return alive.result(), member.result(), pg.result()

    def _holds(self) -> tuple[bool, frozenset[str]]:
        directory = Path(self.config.holds_dir)
        now = self.clock.wall()
        for gone in holds.prune(directory, now):
            self.log(
                Decision(
                    "note",
                    None,
                    f"hold {gone.reason!r} (pid {gone.pid}) no longer applies (holder gone or "
                    "expired): removed",
                ),
                {},
                force=True,
            )
        honoured = [v.hold for v in holds.read(directory, now) if v.honoured]
        held_all = any(not h.scope for h in honoured)
        return held_all, frozenset(p for h in honoured for p in h.scope)

    def _orphans(self, fresh: bool = False) -> list[StackProcess]:
        """Stack processes no living supervisord owns (all of them when supervisord died),
        other than this watcher; looked up at most every ORPHAN_SCAN_S unless `fresh`."""
        now = self.clock.monotonic()
        if not fresh and now - self.orphans_at < ORPHAN_SCAN_S:
            return self.orphans
        owner = self.parent if self._parent_alive() else None
        found = find_orphans(self.identity, owner)
        self.orphans = [o for o in found if o.pid != os.getpid()]
        self.orphans_at = now
        return self.orphans

    def _orphaned_programs(self, orphans: list[StackProcess]) -> frozenset[str]:
        names = set()
        for orphan in orphans:
            component = "fencer" if orphan.component == "watcher" else orphan.component
            for p in self.config.programs:
                group = p["process_name"].split(":")[0]
                if p["component"] == component and group == orphan.unit:
                    names.add(p["process_name"])
        return frozenset(names)

    def _programs(self) -> tuple[ProgramView, ...] | None:
        """Every supervised program with its state; None when supervisord does not answer."""
        try:
            states = {p.process_name: p.state for p in self.sup.processes()}
        except SUPERVISOR_ERRORS:
            return None
        return tuple(
            ProgramView(
                p["process_name"], p["component"], p.get("node") or None, states[p["process_name"]]
            )
            for p in self.config.programs
            if p["process_name"] in states
        )

    # --- act -----------------------------------------------------------------------------

    def fence(self, node: WatchNode) -> tuple[bool, str]:
        """(confirmed, how). On separate hosts, by the operator's command (exit 0: the host
        is off or cut); on one machine, by stopping the node's processes."""
        if self.config.fenced_by_command(node):
            pending = self.unfencing.pop(node.name, None)
            if pending is not None:
                # A late power-on must not undo this fence: let it end first (bounded by
                # the command's own timeout), and forget it.
                with contextlib.suppress(Exception):
                    pending[0].result(timeout=FENCE_COMMAND_TIMEOUT_S + 5)
            self.unfenced.pop(node.name, None)
            result = self.host_command(self.config.fence_command, node)
            how = (
                f"fencing.command fenced its host {node.host} in {result.duration_s:.1f} s"
                if result.ok
                else f"fencing.command failed on {node.host} (exit {result.returncode}: "
                f"{result.tail(3)[:300]})"
            )
            return result.ok, how
        confirmed, killed, scope = self.stop_node(node)
        return confirmed, f"{killed} processes killed; {scope}"

    def host_command(self, command: str, node: WatchNode) -> ToolResult:
        """The operator's fence or unfence command, by /bin/sh, about the node's host."""
        env = {
            "HASTACK_FENCE_NODE": node.name,
            "HASTACK_FENCE_HOST": node.host,
            "HASTACK_FENCE_ADDRESS": node.address,
            "HASTACK_CONFIG": self.config.applied_spec,
        }
        return run_session(["/bin/sh", "-c", command], env=env, timeout_s=FENCE_COMMAND_TIMEOUT_S)

    def stop_node(self, node: WatchNode) -> tuple[bool, int, str]:
        """Stop the node's Patroni (and its etcd member when that one is unhealthy anyway)
        in supervisord, then SIGKILL every fenced process of the node's user until none is
        left. (confirmed, processes killed, what was spared)."""
        healthy = self._etcd_health()
        scope = fence_scope(node.name, node.etcd_program is not None, healthy)
        stop = [node.patroni_program] + ([node.etcd_program] if scope.kill_etcd else [])
        for program in filter(None, stop):
            with contextlib.suppress(*SUPERVISOR_ERRORS, Exception):
                self.sup.stop(program, wait=False)
        spare = set() if scope.kill_etcd else {"etcd"}
        killed: set[int] = set()

        def gone() -> bool:
            pids = node_pids(node, spare)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(pids)
            return not pids

        try:
            until(
                gone,
                what=f"{node.name} fenced",
                timeout_s=FENCE_DEADLINE_S,
                interval_s=0.02,
                clock=self.clock,
            )
        except WaitTimeout:
            return False, len(killed), scope.sentence
        return True, len(killed), scope.sentence

    def _etcd_health(self) -> dict[str, bool]:
        nodes = [n for n in self.config.nodes if n.etcd_url]
        statuses = list(self.pool.map(lambda n: self.etcd.member_status(n.etcd_url or ""), nodes))
        return {n.name: s.healthy for n, s in zip(nodes, statuses, strict=True)}

    def release(self, node: WatchNode, hand_over: bool = False) -> tuple[bool, str]:
        """Delete the leader key only if it still names `node`, through the surviving etcd
        members, retrying while etcd elects a leader. `hand_over` (a host fenced by the
        command): name its synchronous standby as the failover candidate in the same
        transaction, so that the candidate promotes without first asking the fenced leader
        how far it got (Patroni waits 2 s for an answer that cannot come from a host that
        is off)."""
        client = EtcdClient(
            self.config.etcd_urls_without(node.name),
            timeout_s=0.5,
            identity=self.config.etcd_identity,
        )
        base = self.config.leader_key.rsplit("/", 1)[0]

        def attempt() -> tuple[str | None, str]:
            try:
                candidate = (
                    _sync_standby(client.get(f"{base}/sync"), node.name) if hand_over else None
                )
                if candidate is not None:
                    value = json.dumps({"member": candidate})
                    done = client.delete_and_put_if_equals(
                        self.config.leader_key, node.name, f"{base}/failover", value
                    )
                    return (f"handed over to {candidate}" if done else "already changed"), ""
                deleted = client.delete_if_equals(self.config.leader_key, node.name)
            except EtcdUnavailable as exc:
                return None, exc.what
            return ("deleted" if deleted else "already changed"), ""

        try:
            how = poll(
                attempt,
                what="the leader key's release",
                timeout_s=RELEASE_DEADLINE_S,
                interval_s=0.1,
                clock=self.clock,
            )
        except WaitTimeout:
            return False, "etcd did not answer"
        return True, how

    def route_away(self, node: WatchNode, everywhere: bool) -> None:
        """Take the node out of HAProxy's read-write pool (every pool when fenced) now,
        cutting its sessions, until it is seen back as a replica."""
        cfg = self.config
        backends = cfg.haproxy_backends if everywhere else (cfg.haproxy_rw_backend,)
        for backend in backends:
            with contextlib.suppress(HAProxyUnavailable):
                self.haproxy.set_maintenance(backend, node.name)
        self.routed_away[node.name] = sorted(
            set(self.routed_away.get(node.name, [])) | set(backends)
        )
        self._save_state()

    def readmit_returning(self, leader: str | None) -> None:
        """Put nodes taken out of HAProxy back, and count fenced nodes as returned, once they
        run again as replicas."""
        names = set(self.routed_away) | set(self.heal.fenced)
        if not names or self.state.down_since is not None:
            return  # never slow down a step that may have to fence
        nodes = [
            n
            for n in (self.config.node(name) for name in sorted(names))
            if n is not None and (n.name == leader or not self._host_still_off(n))
        ]
        if not nodes:
            return
        probes = list(
            self.pool.map(lambda n: probe_member(n, self.config.timings.probe_timeout_s), nodes)
        )
        roles = {n.name: (p.role, p.pg_state) for n, p in zip(nodes, probes, strict=True)}
        for name in readmit(frozenset(names), roles, leader):
            for backend in self.routed_away.pop(name, []):
                with contextlib.suppress(HAProxyUnavailable):
                    self.haproxy.set_ready(backend, name)
            role, _state = roles[name]
            if name in self.heal.fenced:
                self.heal = node_returned(self.heal, name)
                self.unfenced.pop(name, None)
                self.unfence_noted.discard(name)
                sentence = f"{name} runs again ({role}) after its fence: healed, back in HAProxy"
            else:
                sentence = f"{name} runs again ({role}): back in HAProxy"
            self._save_state()
            self.log(Decision("readmit", name, sentence), {}, force=True)

    def _host_still_off(self, node: WatchNode) -> bool:
        """Its host was fenced by the command and the unfence command has not brought it
        back yet: a probe could only time out, slowing every poll by the probe timeout.
        (Without an unfence command the operator brings it back: it is probed.)"""
        return (
            node.name in self.heal.fenced
            and self.config.fenced_by_command(node)
            and bool(self.config.unfence_command)
            and not (node.name in self.unfenced and self.unfenced[node.name].ok)
        )

    def start_programs(self, inp: HealInput) -> None:
        actions, self.waiting, self.heal = plan_heal(self.heal, inp, self.heal_timings)
        if self.config.fence_command:
            self.return_hosts(inp)
        for action in actions:
            try:
                self.sup.start(action.process_name, wait=False, stop_timeout_s=5)
                outcome: dict[str, Any] = {"started": True}
            except Exception as exc:
                outcome = {"started": False, "error": f"{type(exc).__name__}: {exc}"}
            self.log(Decision("heal", action.node, action.sentence), outcome, force=True)
        # Once per down spell and program, not every poll: the sentences carry counters.
        waiting_now = {w.process_name for w in self.waiting}
        for wait in self.waiting:
            if wait.process_name not in self.noted:
                self.log(Decision("note", None, wait.sentence), {}, force=True)
        self.noted = waiting_now

    def return_hosts(self, inp: HealInput) -> None:
        """Bring back the host of each command-fenced node once it is safe (another node
        leads), with fencing.unfence_command; without one, say once that it stays fenced."""
        t = self.clock.monotonic()
        self._collect_unfenced(t)
        for name in sorted(self.heal.fenced):
            node = self.config.node(name)
            earlier = self.unfenced.get(name)
            if node is None or name in self.unfencing or (earlier and t < earlier.retry_at):
                continue
            if not self.config.fenced_by_command(node):
                continue  # fenced here, by its processes: it returns as on one machine
            if not self.config.unfence_command:
                if name not in self.unfence_noted:
                    sentence = (
                        f"{name}'s host {node.host} was fenced and stays so (no "
                        "fencing.unfence_command): bring it back yourself"
                    )
                    self.log(Decision("note", name, sentence), {}, force=True)
                    self.unfence_noted.add(name)
                continue
            verdict = host_return(self.heal, inp, name, node.host, self.heal_timings)
            if isinstance(verdict, Waiting):
                continue
            future = self.host_pool.submit(self.host_command, self.config.unfence_command, node)
            self.unfencing[name] = (future, verdict.sentence)

    def _collect_unfenced(self, t: float) -> None:
        """Log each unfence command that finished; a failed one is tried again later."""
        for name, (future, sentence) in list(self.unfencing.items()):
            if not future.done():
                continue
            del self.unfencing[name]
            try:
                result = future.result()
            except Exception as exc:
                outcome: dict[str, Any] = {"unfenced": False, "error": repr(exc)[:300]}
                ok = False
            else:
                ok = result.ok
                outcome = {"unfenced": ok, "exit": result.returncode}
                if not ok:
                    outcome["output"] = result.tail(3)[:300]
            self.log(Decision("heal", name, sentence), outcome, force=True)
            if name not in self.heal.fenced:
                continue  # back already (its host returned by other means): nothing to keep
            # Once back, the node returns by itself; a failed command is tried again later.
            retry_at = t + (10 * FENCE_COMMAND_TIMEOUT_S if ok else UNFENCE_RETRY_S)
            # A host once brought back stays worth probing: a later retry may fail only
            # because it is on already (`virsh start` of a running domain exits 1).
            earlier = self.unfenced.get(name)
            self.unfenced[name] = Unfenced(retry_at, ok or (earlier is not None and earlier.ok))

    def scan_members(self, heal: HealInput) -> None:
        """Every few seconds, from Patroni's member keys: ask Patroni to rebuild a replica
        that cannot start (runtime/replica_repair.py), and unblock WAL archiving stuck behind
        an older timeline's segment on the leader (runtime/archive_unblock.py)."""
        t = self.clock.monotonic()
        if not heal.etcd_ok or t - self.repair_at < REPAIR_SCAN_S:
            return
        self.repair_at = t
        prefix = self.config.leader_key.rsplit("/", 1)[0] + "/members/"
        try:
            members = members_from_dcs(self.etcd.get_prefix(prefix))
        except EtcdUnavailable:
            return
        nodes = self.config.nodes
        if heal.paused or heal.held_all:
            blocked = frozenset(n.name for n in nodes)
        else:
            blocked = frozenset(n.name for n in nodes if n.patroni_program in heal.held)
        repairs, self.repair = plan_repairs(self.repair, t, members, heal.leader, blocked)
        for repair in repairs:
            self.log(
                Decision("repair", repair.node, repair.sentence),
                self._reinit(repair.node),
                force=True,
            )
        leader = next((m for m in members if m.name == heal.leader), None)
        busy = self.unblocking is not None and not self.unblocking.done()
        if leader is not None and leader.name not in blocked and not busy:
            # In its own thread: a push takes a while, and the poll must go on (fencing).
            self.unblocking = self.unblock_pool.submit(self.unblock_archive, t, leader)

    def unblock_archive(self, t: float, leader: Member) -> None:
        try:
            self._unblock_archive(t, leader)
        except Exception as exc:  # its own thread: said, never lost
            sentence = f"checking {leader.name}'s WAL archive queue failed: {type(exc).__name__}"
            self.log(Decision("note", leader.name, sentence), {"error": str(exc)[:300]}, True)

    def _unblock_archive(self, t: float, leader: Member) -> None:
        node = self.config.node(leader.name)
        if node is None or not node.archive_push or leader.state != "running":
            return
        try:
            # Names only: root lists the node's directory and never opens what is in it.
            status_files = os.listdir(Path(node.pgdata) / "pg_wal" / "archive_status")
        except OSError:
            return
        due, self.unblock = archive_unblock.plan_checks(
            self.unblock, t, leader.name, leader.timeline, status_files
        )
        for segment in due:
            wal = Path(node.pgdata) / "pg_wal"
            pushed = run_tool(
                [*node.archive_push, "--archive-async=n", "archive-push", str(wal / segment)],
                user=node.user,
                timeout_s=ARCHIVE_PUSH_TIMEOUT_S,
            )
            extra: dict[str, Any] = {"segment": segment, "exit": pushed.returncode}
            marked = None
            if pushed.returncode == archive_unblock.DIFFERENT_CHECKSUM:
                status = wal / "archive_status"
                # As the node's user: root never renames inside a directory another user owns.
                marked = run_tool(
                    [
                        "mv",
                        "-f",
                        "--",
                        str(status / f"{segment}.ready"),
                        f"{status}/{segment}.done",
                    ],
                    user=node.user,
                    timeout_s=10.0,
                )
                extra["marked_done"] = marked.ok
                if not marked.ok:
                    extra["error"] = marked.tail()[:300]
                else:
                    extra["archiver_woken"] = self._wake_archiver(node)
            sentence = archive_unblock.sentence(
                node.name,
                segment,
                leader.timeline or 0,
                pushed.returncode,
                pushed.tail(),
                marked=marked is None or marked.ok,
            )
            decided = pushed.returncode == 0 or (marked is not None and marked.ok)
            self.unblock = archive_unblock.after_push(
                self.unblock, segment, self.clock.monotonic(), decided
            )
            self.log(Decision("heal", node.name, sentence), extra, force=True)

    def _wake_archiver(self, node: WatchNode) -> bool:
        """After three failures PostgreSQL's archiver waits a minute before it tries again;
        SIGUSR1 sets its latch (no other effect), so archiving resumes now. Sent as the
        node's user, to the node's own archiver only."""
        woken = False
        for pid in archiver_pids(node.user):
            woken |= run_tool(["kill", "-USR1", str(pid)], user=node.user, timeout_s=5.0).ok
        return woken

    def _reinit(self, name: str) -> dict[str, Any]:
        node = self.config.node(name)
        if node is None:
            return {"reinitialized": False, "error": "not a node of this stack"}
        try:
            password = (Path(self.config.secrets_dir) / "patroni_rest_password").read_text()
            client = PatroniClient(
                node.address, node.rest_port, node.rest_ca, auth=(PATRONI_REST, password.strip())
            )
            code, text = client.reinitialize()
        except (OSError, HastackError) as exc:
            return {"reinitialized": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        return {"reinitialized": code == 200, "code": code, "answer": text[:300]}

    def _reap(self) -> None:
        """Collect a finished recovery `up` (no zombie left) and log how it ended."""
        if self.recovering is None or self.recovering.poll() is None:
            return
        code, self.recovering = self.recovering.returncode, None
        sentence = f"the recovery `hastack up` ended with exit {code}"
        if code:
            sentence += f" (see {self.config.recover_log}); it is retried with back-off"
        self.log(Decision("note", None, sentence), {"exit": code}, force=True)

    def recover_supervisord(self, orphans: list[StackProcess]) -> None:
        """supervisord died and left its programs running unsupervised (or some run outside
        it): run `hastack up` (from the installed hastack, with the spec `up` last applied),
        which takes them over. Retried with back-off while orphans remain."""
        now = self.clock.monotonic()
        # Retries wait longer each time (an `up` that fails, fails for a reason to look at).
        delay = RECOVER_BACKOFF_S[min(self.recover_attempts, len(RECOVER_BACKOFF_S) - 1)]
        self.recover_attempts += 1
        self.next_recover = now + delay
        command = list(self.config.recover_command)
        with open(self.config.recover_log, "ab") as log:
            log.write(f"\n--- {datetime.now(UTC).isoformat()} {' '.join(command)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # it stops this watcher; it must outlive it
                close_fds=True,
            )
        self.recovering = proc
        what = (
            "supervisord is gone and its programs run unsupervised"
            if self.supervisord == "gone"
            else f"{len(orphans)} processes run outside supervisord"
        )
        self.log(
            Decision(
                "heal",
                None,
                f"{what}: running `{' '.join(command)}` (pid {proc.pid}) to take them over; "
                f"log {self.config.recover_log}",
            ),
            {"attempt": self.recover_attempts, "orphans": [o.describe() for o in orphans]},
            force=True,
        )

    # --- one poll ------------------------------------------------------------------------

    def step(self) -> Decision:
        if self.by_systemd:
            return self._step_under_systemd()
        obs, heal_input = self.observe()
        self.supervisord = "running" if self._parent_alive() else "gone"
        self._reap()
        orphans = self._orphans()
        # Any hold (a drill, a restore holding some programs down on purpose): a recovery
        # `up` would start what the holder keeps stopped.
        held = obs.held or (heal_input is not None and bool(heal_input.held))
        if self.supervisord == "running" and not takeover_candidates(orphans):
            # Back to normal: a later loss recovers at once.
            self.recover_attempts, self.next_recover = 0, 0.0
        elif not held and self.clock.monotonic() >= self.next_recover:
            orphans = self._orphans(fresh=True)  # the cached list may predate an `up`
            candidates = takeover_candidates(orphans)
            if self.supervisord == "gone" or candidates:
                self.recover_supervisord(candidates or orphans)
        if obs.etcd_ok:
            self.readmit_returning(obs.leader)
        decision, self.state = decide(self.state, obs, self.config.timings)
        decision = self._act(decision, obs)
        if heal_input is not None:
            self.start_programs(replace(heal_input, orphaned=self._orphaned_programs(orphans)))
            self.scan_members(heal_input)
        return decision

    def _step_under_systemd(self) -> Decision:
        """One poll on a host of the systemd render: systemd runs (and restarts) the
        programs, so there is no supervisord to recover and no orphan to take over; the
        rest is the same poll."""
        obs, heal_input = self.observe()
        self.supervisord = "systemd"
        if obs.etcd_ok:
            self.readmit_returning(obs.leader)
        decision, self.state = decide(self.state, obs, self.config.timings)
        decision = self._act(decision, obs)
        if heal_input is not None:
            self.start_programs(heal_input)
            self.scan_members(heal_input)
        return decision

    def _act(self, decision: Decision, obs: Observation) -> Decision:
        extra: dict[str, Any] = {}
        node = self.config.node(decision.node) if decision.node else None
        if decision.action == "fence" and node is not None:
            confirmed, how = self.fence(node)
            extra = {"confirmed": confirmed, "how_fenced": how}
            self.state = after_fence(self.state, node.name, confirmed)
            self.fences[node.name] = self.fences.get(node.name, 0) + 1
            if confirmed or not self.config.fenced_by_command(node):
                self.heal = node_fenced(self.heal, node.name, obs.t)
            self._save_state()
            self.log(decision, extra, force=True)
            if not confirmed:
                sentence = f"fence of {node.name} not confirmed: leaving it to the TTL"
                self.log(Decision("none", node.name, sentence), {}, force=True)
                return decision
            decision = Decision(
                "release",
                node.name,
                f"{node.name} fenced ({how}): releasing its leader key",
            )
        if decision.action == "release" and node is not None:
            self.route_away(node, everywhere="confirmed" in extra)
            # A retried release (etcd did not answer the first) still hands the key over:
            # a command-fenced node is in `heal.fenced` only once its fence was confirmed.
            by_command = self.config.fenced_by_command(node) and node.name in self.heal.fenced
            released, how = self.release(node, hand_over=by_command)
            self.state = after_release(self.state, node.name, released)
            self.log(decision, {**extra, "released": released, "how": how}, force=True)
            return decision
        if decision.action == "suspect" and self.state.down_since is not None:
            extra = {"silent_for_s": round(obs.t - self.state.down_since, 3)}
        self.log(decision, extra, key=(decision.action, decision.sentence, self.state.down_since))
        return decision

    def _parent_alive(self) -> bool:
        """The watcher is supervisord's child: a changed parent means supervisord died."""
        return os.getppid() == self.parent and psutil.pid_exists(self.parent)

    # --- files ---------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(Path(self.config.state_file).read_text())
        except (OSError, ValueError):
            return {}
        return data

    def _save_state(self) -> None:
        path = Path(self.config.state_file)
        tmp = path.with_name(f".{path.name}.tmp")
        state = {"routed_away": self.routed_away, "fenced": sorted(self.heal.fenced)}
        tmp.write_text(json.dumps(state))
        tmp.replace(path)

    def beat(self) -> None:
        error_at, error = self.last_error if self.last_error else (None, None)
        heartbeat.write(
            Path(self.config.heartbeat_file),
            heartbeat.Heartbeat(
                pid=os.getpid(),
                started_at=self.started_at,
                last_poll_at=self.last_poll_at,
                polls=self.polls,
                failed_polls=self.failed_polls,
                last_error=error,
                last_error_at=error_at,
                poll_interval_s=self.config.timings.poll_interval_s,
                leader=self.state.leader,
                supervisord=self.supervisord,
                fenced=sorted(self.heal.fenced),
                waiting=[asdict(w) for w in self.waiting],
            ),
        )

    def write_metrics(self) -> None:
        """Every METRICS_S: hastack's own metrics for Prometheus (runtime/hastack_metrics.py),
        through the node exporter's textfile collector."""
        cfg = self.config
        now = self.clock.monotonic()
        if not cfg.metrics_file or now - self.metrics_at < METRICS_S:
            return
        self.metrics_at = now
        backups = (
            hastack_metrics.backups_from_state(Path(cfg.backup_state_file))
            if cfg.backup_state_file
            else {}
        )
        text = hastack_metrics.render(
            hastack_metrics.HastackMetrics(
                heartbeat_at=self.last_poll_at or self.clock.wall(),
                fences=self.fences,
                stanza=cfg.stanza,
                backups=backups,
                certificates=hastack_metrics.certificate_expiry(cfg.certificates),
            )
        )
        # In root's directory, readable by the monitoring user's node exporter alone.
        write_atomic(Path(cfg.metrics_file), text, cfg.metrics_owner, 0o600)
        if cfg.decisions_mirror and self.recent_changed:
            # For the dashboard (the monitoring user): the watcher's own log is root's.
            mirror = json.dumps(list(self.recent)) + "\n"
            write_atomic(Path(cfg.decisions_mirror), mirror, cfg.metrics_owner, 0o600)
            self.recent_changed = False

    def log(
        self,
        decision: Decision,
        extra: dict[str, Any],
        force: bool = False,
        key: tuple[Any, ...] | None = None,
    ) -> None:
        """One line per decision that differs from the previous one (`key` says what counts
        as different; a suspicion whose clock restarted is a new decision)."""
        with self.log_lock:
            self._log(decision, extra, force, key)

    def _log(
        self,
        decision: Decision,
        extra: dict[str, Any],
        force: bool,
        key: tuple[Any, ...] | None,
    ) -> None:
        key = key or (decision.action, decision.sentence)
        if not force and key == self.last:
            return
        self.last = key
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "t_mono": round(self.clock.monotonic(), 3),
            **asdict(decision),
            **extra,
        }
        self.recent.append(
            {k: record[k] for k in ("time", "action", "node", "sentence") if k in record}
        )
        self.recent_changed = True
        path = Path(self.config.decision_log)
        with contextlib.suppress(OSError):
            if path.stat().st_size > LOG_ROTATE_BYTES:
                path.replace(path.with_suffix(path.suffix + ".1"))
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        say(decision.sentence)

    last_poll_at: float | None = None

    def run(self) -> None:
        say(f"watcher for stack {self.config.stack!r} started (pid {os.getpid()})")
        while True:
            started = self.clock.monotonic()
            try:
                self.step()
                self.polls += 1
                self.last_poll_at = self.clock.wall()
            except Exception as exc:
                self.failed_polls += 1
                self.last_error = (self.clock.wall(), f"{type(exc).__name__}: {exc}"[:300])
                say(f"error in watcher poll: {traceback.format_exc()}")
            with contextlib.suppress(OSError):
                self.beat()
            with contextlib.suppress(OSError):
                self.write_metrics()
            elapsed = self.clock.monotonic() - started
            self.clock.sleep(max(0.0, self.config.timings.poll_interval_s - elapsed))


def _sync_standby(sync: str | None, leader: str) -> str | None:
    """The one synchronous standby Patroni's /sync key names for `leader` (None: not
    synchronous mode, another leader, or not exactly one)."""
    try:
        data = json.loads(sync or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("leader") != leader:
        return None
    names = [n for n in str(data.get("sync_standby") or "").split(",") if n]
    return names[0] if len(names) == 1 and names[0] != leader else None


def node_pids(node: WatchNode, spare: set[str]) -> list[int]:
    """Processes of the node's user, except those whose name is in `spare` (e.g. etcd)."""
    pids = []
    for proc in psutil.process_iter(["username", "name"]):
        if proc.info["username"] == node.user and proc.info["name"] not in spare:
            pids.append(proc.pid)
    return pids


def archiver_pids(user: str) -> list[int]:
    """PostgreSQL's archiver processes run by `user` (by their process title)."""
    pids = []
    for proc in psutil.process_iter(["username", "cmdline"]):
        title = " ".join(proc.info["cmdline"] or ())
        if (
            proc.info["username"] == user
            and title.startswith("postgres:")
            and ": archiver" in title
        ):
            pids.append(proc.pid)
    return pids


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m hastack.runtime.watcher WATCHER_JSON", file=sys.stderr)
        return 2
    Watcher(WatcherConfig.from_json(Path(argv[1]).read_text())).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
