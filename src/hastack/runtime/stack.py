"""One handle on a stack: what every op and drill needs, built in one place.

A `Stack` holds the plan, the clock, the secrets (read once, on first use), the supervisor and
factories for every client (etcd, Patroni, HAProxy, PgBouncer, Redis, network cuts, direct
PostgreSQL connections). Ops and drills take a `Stack`; they never build a client or read a
secret themselves. `hastack.runtime.fakes.FakeStack` stands in for it in unit tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

import psutil
import psycopg

from hastack.errors import Unavailable
from hastack.polling import SYSTEM_CLOCK, Clock, poll, until
from hastack.render.container_files import uid_of as container_uid
from hastack.render.programs import Program, stack_programs
from hastack.runtime import holds, secret_store
from hastack.runtime.containers import CONTAINER_TARGETS, task_of, volume_path
from hastack.runtime.health import Assessment, assess
from hastack.runtime.hostlab import Lab, lab_exists
from hastack.runtime.orphans import Identity, identity_of
from hastack.runtime.scratch import Scratch
from hastack.runtime.snapshot import StackSnapshot, postmaster_pid, take_snapshot
from hastack.runtime.supervisor import Supervisor
from hastack.spec import roles
from hastack.spec.connection import connection_settings, pg_url
from hastack.spec.plan import Node, StackPlan
from hastack.spec.secrets import Secrets
from hastack.tools.docker import Docker
from hastack.tools.etcd_api import EtcdClient, EtcdUnavailable
from hastack.tools.haproxy_api import HAProxyAdmin
from hastack.tools.http import ClientCert
from hastack.tools.iptables import NetCut
from hastack.tools.patroni_api import PatroniClient
from hastack.tools.pgbackrest import PgBackRest
from hastack.tools.pgbench import PgBench
from hastack.tools.pgbouncer_admin import PgBouncerAdmin
from hastack.tools.redis_probe import RedisProbe
from hastack.tools.wrk import Wrk

T = TypeVar("T")
Venue = Literal["machine", "containers", "lab"]

Connection = psycopg.Connection[tuple[object, ...]]


def program_list(plan: StackPlan) -> list[Program]:
    """Every supervised program of a stack (render/programs.py), for the layers above."""
    return stack_programs(plan)


class Stack:
    def __init__(
        self, plan: StackPlan, *, clock: Clock = SYSTEM_CLOCK, secrets: Secrets | None = None
    ) -> None:
        """`secrets`: given, instead of read from the state directory (inside a container,
        which has none: `hastack deploy` hands them over)."""
        if plan.standby is not None and plan.paths.standby_promoted.is_file():
            # Promoted: a primary cluster now; its spec only says how it was born.
            plan = dataclasses.replace(plan, standby=None)
        self.plan = plan
        self.clock = clock
        if secrets is not None:
            self.__dict__["secrets"] = secrets

    @property
    def name(self) -> str:
        return self.plan.name

    # --- what the stack is made of -------------------------------------------------------

    @cached_property
    def supervisor(self) -> Supervisor:
        p = self.plan.paths
        return Supervisor(
            p.supervisor_config,
            p.supervisor_socket,
            p.supervisor_pidfile,
            python=self.plan.spec.binaries.hastack_python,
        )

    @cached_property
    def secrets(self) -> Secrets:
        """Every secret, read once; a HastackError when the stack was never brought up."""
        return secret_store.load(self.plan.paths.secrets_dir, self.name)

    def forget_secrets(self) -> None:
        """After a rotation: the next use reads the stored secrets again."""
        self.__dict__.pop("secrets", None)

    def secrets_or_none(self) -> Secrets | None:
        """For read-only views (`status`): what can be probed without secrets still is."""
        try:
            return self.secrets
        except Exception:
            return None

    def programs(self, component: str | None = None, group: str | None = None) -> list[Program]:
        """The stack's supervised programs in start order, optionally one component's or
        one group's."""
        return [
            p
            for p in stack_programs(self.plan)
            if (component is None or p.component == component)
            and (group is None or p.group == group)
        ]

    @cached_property
    def identity(self) -> Identity:
        """How to recognise the stack's processes (users, instances, the watcher)."""
        return identity_of(self.plan)

    def processes(self) -> list[psutil.Process]:
        """Every process running as one of the stack's system users."""
        users = set(self.plan.all_users)
        return [p for p in psutil.process_iter(["username"]) if p.info["username"] in users]

    # --- clients -------------------------------------------------------------------------

    def etcd(self, timeout_s: float = 1.0, urls: Sequence[str] | None = None) -> EtcdClient:
        return EtcdClient(
            tuple(urls or self.plan.etcd_client_urls),
            timeout_s=timeout_s,
            identity=self.client_cert,
        )

    @property
    def client_cert(self) -> ClientCert:
        """hastack's client certificate, for etcd."""
        paths = self.plan.paths
        return ClientCert(str(paths.ca_cert), str(paths.client_cert), str(paths.client_key))

    def patroni(self, node: str, timeout_s: float = 2.0) -> PatroniClient:
        """A node's Patroni REST API, with the credentials its write endpoints need when
        the secrets are readable."""
        n = self.plan.node(node)
        secrets = self.secrets_or_none()
        auth = (roles.PATRONI_REST, secrets.patroni_rest_password) if secrets else None
        port, ca = self.plan.spec.patroni.rest_port, str(self.plan.paths.ca_cert)
        return PatroniClient(n.address, port, ca, auth, timeout_s)

    @property
    def in_containers(self) -> bool:
        """Deployed on a container engine (`hastack deploy`), not under supervisord."""
        return self.plan.spec.target in CONTAINER_TARGETS

    @cached_property
    def in_lab(self) -> bool:
        """Its hosts simulated on this machine, as network namespaces (`hastack lab up`)."""
        return lab_exists(self.plan)

    @property
    def venue(self) -> Venue:
        """Where the stack runs: on this machine, on a container engine, or in the lab."""
        return "containers" if self.in_containers else "lab" if self.in_lab else "machine"

    def lab(self) -> Lab:
        """The lab's hosts (power, cables, links)."""
        return Lab(self.plan, self.supervisor)

    def host_path(self, path: Path) -> Path:
        """Where a path of the plan is on this machine (in a container deployment, under its
        unit's volume)."""
        return volume_path(self.docker(), self.plan, path) if self.in_containers else path

    def node_pids(self, node: Node) -> list[int]:
        """Every process of a node, by its user (in containers, by that user's fixed uid:
        the host has no such user)."""
        if self.in_containers:
            uid = container_uid(self.plan, node.user)
            return [p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid]
        return [p.pid for p in psutil.process_iter(["username"]) if p.info["username"] == node.user]

    def process_owner(self, user: str) -> str:
        """How iptables' owner match names a user's processes: by name, or in containers by
        the fixed uid (the host has no such user)."""
        return str(container_uid(self.plan, user)) if self.in_containers else user

    def postmaster_pid(self, node: Node) -> int | None:
        """The node's running postmaster (in containers, found among its processes: the
        postmaster.pid file holds the container's own pid)."""
        if not self.in_containers:
            return postmaster_pid(node)
        for pid in self.node_pids(node):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                parent = proc.parent()
                if proc.name() == "postgres" and (parent is None or parent.name() != "postgres"):
                    return pid
        return None

    def haproxy(self) -> HAProxyAdmin:
        return HAProxyAdmin(self.host_path(self.plan.paths.haproxy_socket))

    def pgbouncer(self) -> PgBouncerAdmin:
        return PgBouncerAdmin(
            self.plan.services_address,
            self.plan.spec.pgbouncer.port,
            roles.PGBOUNCER_ADMIN,
            self.secrets.pgbouncer_admin_password,
            self.plan.paths.ca_cert,
        )

    def redis(self, timeout_s: float = 1.0) -> RedisProbe:
        return RedisProbe(
            self.plan.services_address,
            self.plan.spec.redis.port,
            self.secrets.redis_password,
            timeout_s,
        )

    def netcut(self) -> NetCut:
        return NetCut(self.plan.iptables_chain)

    def pgbench(self) -> PgBench:
        return PgBench(self.plan.postgres_bin_dir / "pgbench")

    def wrk(self) -> Wrk:
        return Wrk()

    def docker(self) -> Docker:
        """The Docker engine a container deployment of the stack runs on (DOCKER_HOST, or
        the engine's default socket)."""
        return Docker(os.environ.get("DOCKER_HOST"))

    def scratch(self) -> Scratch:
        """The scratch instance backups are restored into (the repository host's)."""
        return Scratch(self.plan)

    def pgbackrest(self) -> PgBackRest:
        """pgBackRest on the repository host: as its user, with its config (the one that
        holds the repository's passphrase and names every node)."""
        paths = self.plan.paths
        user = self.plan.service_users["backup"]
        home = {"HOME": str(paths.backup_dir)}
        if self.in_containers:
            docker = self.docker()
            task = task_of(docker, self.plan, "backup-repo")
            exec_in = (docker.binary, "exec", "-u", user, "-e", f"HOME={home['HOME']}", task.id)
            return PgBackRest(
                self.plan.spec.binaries.pgbackrest,
                paths.backup_config,
                self.plan.stanza,
                env=docker.env,
                prefix=exec_in,
            )
        return PgBackRest(
            self.plan.spec.binaries.pgbackrest,
            paths.backup_config,
            self.plan.stanza,
            user=user,
            env=home,
        )

    def connect(
        self, node: str, dbname: str | None = None, connect_timeout_s: int = 3
    ) -> Connection:
        """A superuser connection straight to one node (no HAProxy, no pooler), autocommit,
        through the node's Unix socket (the only way pg_hba lets the superuser in). A node
        that cannot be reached is an `Unavailable` (an expected failure)."""
        n = self.plan.node(node)
        try:
            return psycopg.connect(
                host=str(self.host_path(n.paths.socket_dir)),
                port=self.plan.spec.postgres.port,
                dbname=dbname or self.plan.spec.postgres.database,
                user=roles.SUPERUSER,
                password=self.secrets.postgres_password,
                connect_timeout=connect_timeout_s,
                autocommit=True,
            )
        except psycopg.OperationalError as exc:
            raise Unavailable(
                f"PostgreSQL on {node} does not answer: {str(exc).strip()[:200]}",
                f"hastack status; hastack logs {node} postgres",
            ) from None

    def urls(self) -> dict[str, str]:
        """What `hastack env` prints: APP_URL, DATABASE_URL(_RO, _DIRECT), REDIS_URL."""
        return connection_settings(self.plan, self.secrets)

    def node_url(self, node: str) -> str:
        """The application login's DSN straight to one node (a client that bypasses the
        balancer)."""
        n = self.plan.node(node)
        pg = self.plan.spec.postgres
        return pg_url(
            self.secrets.app_login,
            self.secrets.app_password,
            n.address,
            pg.port,
            pg.database,
            self.plan.paths.ca_cert,
        )

    # --- state ---------------------------------------------------------------------------

    def leader(self) -> str | None:
        """The Patroni leader by a linearizable etcd read; None if none or etcd is down."""
        try:
            return self.etcd(timeout_s=0.5).get(self.plan.leader_key())
        except EtcdUnavailable:
            return None

    def snapshot(self, services: bool = True) -> StackSnapshot:
        """One look at every component, gathered in parallel (~0.1 s)."""
        return take_snapshot(self, services=services)

    def assess(self) -> Assessment:
        return assess(self.snapshot())

    # --- acting --------------------------------------------------------------------------

    @contextlib.contextmanager
    def hold(self, seconds: float, reason: str, scope: Sequence[str] = ()) -> Iterator[None]:
        """Keep the watcher from acting (on `scope`'s programs only, when given) while
        hastack itself stops, starts or moves things. Holds nest."""
        with holds.hold(self.plan.paths.holds_dir, seconds, reason, scope, clock=self.clock):
            yield

    def wait(self, check: Callable[[], tuple[T | None, str]], **how: Any) -> T:
        """`polling.poll` on this stack's clock: what=, timeout_s=, interval_s=, hint=."""
        return poll(check, clock=self.clock, **how)

    def until(self, predicate: Callable[[], bool], **how: Any) -> float:
        """`polling.until` on this stack's clock."""
        return until(predicate, clock=self.clock, **how)
