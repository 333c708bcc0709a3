"""Each host's firewall on separate hosts (target systemd): who talks to whom on which port, as
a table, and the nftables ruleset each host loads from it. Pure.

The production guides ask for network segmentation: PostgreSQL reachable only from its peers,
HAProxy and the backup host, etcd only from its members and its clients, and so on. `flows`
is that table, one row per listening port; `host_rules` reads it for one host and
`render_nftables` writes the host's ruleset: default drop, established traffic and loopback
(which carries every flow between two units on the same host), then one accept per row whose
listener is placed on the host, from the addresses of the hosts its clients are placed on.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hastack.spec.placement import BACKUP, MONITORING, SERVICES, Host
from hastack.spec.plan import StackPlan

SSH_PORT = 22

NFT_BINARY = "/usr/sbin/nft"


@dataclass(frozen=True)
class Flow:
    """Clients of some units connect to one port of some other units."""

    name: str
    port: int
    listeners: tuple[str, ...]
    """The units that listen on this port (on their host's address)."""
    clients: tuple[str, ...] | None
    """The units that connect to it; None: anywhere (the edge, ssh)."""
    why: str


@dataclass(frozen=True)
class Rule:
    """One accept of a host's input chain: a port, from some addresses (None: anywhere)."""

    flow: str
    port: int
    sources: tuple[str, ...] | None
    why: str


def watcher_placed(plan: StackPlan) -> bool:
    """The fencing watcher runs on separate hosts only with a fence command (see systemd.py)."""
    return plan.spec.fencing.enabled and plan.spec.fencing.command is not None


def flows(plan: StackPlan) -> list[Flow]:
    """Every flow between the stack's units, whatever the placement."""
    spec = plan.spec
    pg = tuple(n.name for n in plan.postgres_nodes)
    etcd = tuple(n.name for n in plan.etcd_nodes)
    apps = tuple(i.name for i in plan.app_instances)
    watcher = (SERVICES,) if watcher_placed(plan) else ()
    monitoring = (MONITORING,) if plan.monitoring_enabled else ()
    backup = (BACKUP,) if plan.backup_enabled else ()
    table = [
        Flow("ssh", SSH_PORT, _all_units(plan), None, "the operator's way in: never locked out"),
        Flow("etcd-peer", spec.etcd.peer_port, etcd, etcd, "raft between the members"),
        Flow(
            "etcd-client",
            spec.etcd.client_port,
            etcd,
            pg + watcher,
            "Patroni's DCS; the watcher reads the leader key",
        ),
        Flow(
            "postgres",
            spec.postgres.port,
            pg,
            (*pg, SERVICES, *backup, *watcher),
            "replication and pg_rewind; HAProxy proxies clients; backups; the watcher's probe",
        ),
        Flow(
            "patroni-rest",
            spec.patroni.rest_port,
            pg,
            (*pg, SERVICES, *monitoring, *watcher),
            "HAProxy's health checks, Patroni peers, Prometheus and the dashboard, the watcher",
        ),
        Flow("haproxy-rw", spec.haproxy.rw_port, (SERVICES,), apps, "the app's direct writes"),
        Flow("haproxy-ro", spec.haproxy.ro_port, (SERVICES,), apps, "the app's direct reads"),
        Flow(
            "pgbouncer",
            spec.pgbouncer.port,
            (SERVICES,),
            apps + monitoring,
            "the app's pooled connections; PgBouncer's exporter",
        ),
        Flow("redis", spec.redis.port, (SERVICES,), apps + monitoring, "the app; Redis' exporter"),
        Flow("http", spec.http.http_port, (SERVICES,), None, "the edge (redirects to HTTPS)"),
        Flow("https", spec.http.https_port, (SERVICES,), None, "the edge"),
        Flow(
            "haproxy-stats",
            spec.haproxy.stats_port,
            (SERVICES,),
            monitoring,
            "Prometheus reads HAProxy's /metrics",
        ),
        *(
            Flow(f"app-{i.name}", i.port, (i.name,), (SERVICES, *monitoring), "HAProxy; Prometheus")
            for i in plan.app_instances
        ),
    ]
    if plan.backup_enabled:
        table += [
            Flow(
                "pgbackrest-node",
                spec.backup.port,
                pg,
                (BACKUP,),
                "the repository host takes backups through each node's pgBackRest server",
            ),
            Flow(
                "pgbackrest-repo",
                plan.repo_port,
                (BACKUP,),
                pg,
                "archive-push and archive-get from the nodes",
            ),
        ]
    if plan.monitoring_enabled:
        m = spec.monitoring
        table += [
            Flow("etcd-metrics", m.etcd_metrics_port, etcd, (MONITORING,), "Prometheus"),
            Flow("postgres-exporter", m.postgres_exporter_port, pg, (MONITORING,), "Prometheus"),
            # HTTPS with the monitoring login: the operator's browser, from anywhere.
            Flow("dashboard", m.dashboard_port, (MONITORING,), None, "the operator's dashboard"),
        ]
    return table


def _all_units(plan: StackPlan) -> tuple[str, ...]:
    return tuple(u for h in plan.hosts for u in h.units)


def host_rules(plan: StackPlan, host: Host) -> list[Rule]:
    """The accepts of `host`'s input chain: each flow it listens for, from the hosts its
    clients run on. A client on the same host needs no rule (its traffic arrives on
    loopback), so a flow with only local clients opens nothing."""
    rules = []
    for flow in flows(plan):
        if not set(flow.listeners) & set(host.units):
            continue
        if flow.clients is None:
            rules.append(Rule(flow.name, flow.port, None, flow.why))
            continue
        sources = tuple(
            h.address
            for h in plan.hosts
            if h.name != host.name and set(flow.clients) & set(h.units)
        )
        if sources:
            rules.append(Rule(flow.name, flow.port, sources, flow.why))
    return rules


def table_name(plan: StackPlan) -> str:
    """nftables' name of the stack's table (identifiers take no '-' safely everywhere)."""
    return f"hastack_{plan.name.replace('-', '_')}"


def _accept(rule: Rule) -> list[str]:
    if rule.sources is None:
        return [f"tcp dport {rule.port} accept"]
    lines = []
    for family, keyword in ((4, "ip"), (6, "ip6")):
        found = [a for a in rule.sources if ipaddress.ip_address(a).version == family]
        if found:
            lines.append(f"{keyword} saddr {{ {', '.join(found)} }} tcp dport {rule.port} accept")
    return lines


def render_nftables(plan: StackPlan, host: Host) -> str:
    """`host`'s ruleset. Loading it replaces the stack's table whole (the empty declaration
    first, so the delete never fails on a first load); other tables are left alone."""
    table = table_name(plan)
    body = []
    for rule in host_rules(plan, host):
        origin = "anywhere" if rule.sources is None else ", ".join(rule.sources)
        body.append(f"        # {rule.flow}: {rule.why} (from {origin})")
        body += [f"        {line}" for line in _accept(rule)]
    rules = "\n".join(body)
    return f"""\
#!{NFT_BINARY} -f
# Generated by hastack for stack {plan.name!r}, host {host.name} ({host.address}). Do not edit:
# `hastack render systemd` rewrites it. Units on this host: {", ".join(host.units)}.
# Everything not accepted below is dropped. ssh (port {SSH_PORT}) stays open from anywhere so that
# loading this ruleset never locks the operator out; narrow it to your bastion if you have one.
table inet {table} {{}}
delete table inet {table}
table inet {table} {{
    chain input {{
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        ct state invalid drop
        # Every flow between two units of this host arrives here.
        iif "lo" accept
        # Path MTU discovery, neighbour discovery (IPv6 needs it to work at all), ping.
        meta l4proto {{ icmp, ipv6-icmp }} accept
{rules}
    }}
}}
"""
