"""Kubernetes: the names, labels, paths and resource figures every manifest of the target
shares. Pure.

One namespace per stack, `hastack-<stack>`: the render puts a default-deny NetworkPolicy into
it, so it must belong to the stack alone (a namespace named just after the stack could be
one the cluster already uses for something else). Objects are named `<stack>-<component>`;
the read-write Service alone is named after Patroni's scope (the stack's name, as locally),
because Patroni writes the leader's address into the Endpoints object of that name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hastack.render.container_files import uid_of
from hastack.render.image import image_tag
from hastack.spec.plan import StackPlan

CLUSTER_DOMAIN = "cluster.local"
"""Only where a name must be fully qualified (HAProxy's own resolver reads no search list)
and as a second name in certificates; everything else uses `<name>.<namespace>.svc`, which
resolves through the pods' search list whatever the cluster's domain."""

# Where things are inside the pods (the image has the binaries at the spec's paths).
DATA_DIR = "/data"
PGDATA = f"{DATA_DIR}/pgdata"
SOCKET_DIR = "/run/postgresql"
TLS_DIR = "/etc/hastack/tls"
TLS_CERT = f"{TLS_DIR}/tls.crt"
TLS_KEY = f"{TLS_DIR}/tls.key"
CA_DIR = "/etc/hastack/ca"
CA_CERT = f"{CA_DIR}/ca.crt"
CONFIG_DIR = "/etc/hastack/config"
PGBACKREST_DIR = "/etc/pgbackrest"
"""pgBackRest's default config directory: no command needs --config, and each side's
`*-host-config` default names the other side's file correctly."""
REPO_DIR = "/repo"
TMP_DIR = "/tmp"

PATRONI_OVERHEAD_MB = 64
"""Patroni's Python process beside PostgreSQL in the same container (~40 MB measured)."""
PGBOUNCER_BASE_MB = 16
PGBOUNCER_KB_PER_CONNECTION = 8
"""PgBouncer keeps up to two 4 kB packet buffers per client and server connection."""
REDIS_OVERHEAD_MB = 32
PGBOUNCER_REPLICAS = 2
EDGE_REPLICAS = 2


@dataclass(frozen=True)
class K8sNames:
    stack: str

    @property
    def namespace(self) -> str:
        return f"hastack-{self.stack}"

    @property
    def scope(self) -> str:
        """Patroni's scope (as locally: the stack's name), and the read-write Service."""
        return self.stack

    @property
    def rw(self) -> str:
        return self.scope

    @property
    def patroni_config(self) -> str:
        """Patroni's own config Endpoints; a Service of that name keeps Kubernetes from
        removing them (Patroni need not be allowed to create Services)."""
        return f"{self.scope}-config"

    def of(self, component: str) -> str:
        """`<stack>-<component>`: pg (StatefulSet and its headless Service), ro, pgbouncer,
        redis, app, edge, backup."""
        return f"{self.stack}-{component}"

    def svc(self, name: str) -> str:
        return f"{name}.{self.namespace}.svc"

    def fqdn(self, name: str) -> str:
        return f"{self.svc(name)}.{CLUSTER_DOMAIN}"

    def pg_pod(self, ordinal: int) -> str:
        return f"{self.of('pg')}-{ordinal}"

    def pg_pod_dns(self, ordinal: int) -> str:
        """A PostgreSQL pod's stable name (the StatefulSet's headless Service)."""
        return f"{self.pg_pod(ordinal)}.{self.svc(self.of('pg'))}"


def labels(names: K8sNames, component: str) -> dict[str, str]:
    """What every object of a component carries and its selectors match."""
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": names.stack,
        "app.kubernetes.io/part-of": "hastack",
    }


def metadata(names: K8sNames, name: str, component: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": names.namespace,
        "labels": {**labels(names, component), "app.kubernetes.io/managed-by": "hastack"},
        **extra,
    }


def image(plan: StackPlan) -> str:
    """The image the container targets build (`hastack image build`, tagged after its
    Dockerfile's digest): Debian 12's postgresql-15, etcd, haproxy, pgbouncer, redis and
    pgBackRest, Patroni and hastack in /opt/hastack/venv. Push it to a registry the
    cluster pulls from under this name (or retag it and change the manifests)."""
    return image_tag(plan)


def run_as(plan: StackPlan, user: str) -> int:
    """The image's fixed uid for a system user of the plan."""
    return uid_of(plan, user)


def postgres_uid(plan: StackPlan) -> int:
    """A StatefulSet's pods share one template: every PostgreSQL pod runs as the image's
    first node user (initdb needs a user with a passwd entry). Pods are kept apart by
    their own namespaces and volumes, not by distinct uids as on one machine."""
    return run_as(plan, plan.postgres_nodes[0].user)


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container, in Kubernetes quantities."""

    cpu: str
    memory_mb: int
    memory_limit_mb: int

    def spec(self) -> dict[str, Any]:
        # No CPU limit: CFS throttling adds its latency to every request in the slice where
        # a burst hits it; the request alone reserves the share each container needs (and is
        # what the HPA's utilisation is measured against).
        return {
            "requests": {"cpu": self.cpu, "memory": f"{self.memory_mb}Mi"},
            "limits": {"memory": f"{self.memory_limit_mb}Mi"},
        }


def postgres_resources(plan: StackPlan) -> Resources:
    """postgres.memory_mb is the memory the tuning assumed (shared_buffers 25%,
    effective_cache_size 75%, work_mem from the rest): request = limit = it + Patroni, so
    the scheduler reserves it all and PostgreSQL is the last to be evicted (Guaranteed
    memory)."""
    memory = plan.spec.postgres.memory_mb + PATRONI_OVERHEAD_MB
    return Resources(cpu="500m", memory_mb=memory, memory_limit_mb=memory)


def pgbouncer_resources(plan: StackPlan) -> Resources:
    """16 MB + 8 kB per connection it may hold: max_client_conn clients and its share of
    the plan's server connections."""
    pgb = plan.spec.pgbouncer
    server = plan.pool.server_connections_max // PGBOUNCER_REPLICAS
    kb = (pgb.max_client_conn + server) * PGBOUNCER_KB_PER_CONNECTION
    memory = PGBOUNCER_BASE_MB + -(-kb // 1024)
    return Resources(cpu="100m", memory_mb=memory, memory_limit_mb=memory)


def redis_resources(plan: StackPlan) -> Resources:
    """maxmemory x 1.5 + 32 MB: the data set, half again for the copy-on-write pages of an
    AOF rewrite's fork, and Redis' own overhead."""
    maxmemory = plan.spec.redis.maxmemory_mb
    memory = maxmemory + maxmemory // 2 + REDIS_OVERHEAD_MB
    return Resources(cpu="100m", memory_mb=memory, memory_limit_mb=memory)


APP_RESOURCES = Resources(cpu="250m", memory_mb=192, memory_limit_mb=384)
"""One uvicorn worker with its two database pools and its Redis client (~110 MB measured
for the demo app under load); the CPU request is what the HPA's 70% is of."""
EDGE_RESOURCES = Resources(cpu="100m", memory_mb=64, memory_limit_mb=128)
BACKUP_RESOURCES = Resources(cpu="100m", memory_mb=128, memory_limit_mb=512)
SIDECAR_RESOURCES = Resources(cpu="50m", memory_mb=64, memory_limit_mb=256)
"""pgBackRest's server beside PostgreSQL (it streams the data directory to a backup)."""
