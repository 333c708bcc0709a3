"""Which host runs which unit of a multi-host stack, and the placements that defeat HA. Pure.

A unit is what moves between hosts as a whole: a node (a PostgreSQL node with its etcd member,
or an etcd-only witness), an app instance, and the shared services, the backup repository and
monitoring. The spec may name a host for any unit (`hosts[].runs`); hastack places the rest.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass

from hastack.spec.errors import SpecIssue
from hastack.spec.model import StackSpec

SERVICES = "services"
"""HAProxy, PgBouncer and Redis: the stack's entry point."""
BACKUP = "backup"
MONITORING = "monitoring"


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    units: tuple[str, ...]
    """The units placed here, in the order `hastack plan` lists them."""


def node_names(spec: StackSpec) -> list[str]:
    """pg1..pgN, then dcsN for each etcd member beyond the PostgreSQL nodes."""
    count = max(spec.postgres.nodes, spec.etcd.members)
    return [
        f"{spec.postgres.node_prefix}{i}" if i <= spec.postgres.nodes else f"dcs{i}"
        for i in range(1, count + 1)
    ]


def units(spec: StackSpec) -> list[str]:
    """Every unit of the stack, nodes first."""
    found = node_names(spec)
    found += [f"app{i}" for i in range(1, spec.app.instances + 1)]
    found.append(SERVICES)
    if spec.backup.enabled:
        found.append(BACKUP)
    if spec.monitoring.enabled:
        found.append(MONITORING)
    return found


def place(spec: StackSpec) -> tuple[Host, ...]:
    """Each host with its units: those the spec names there, then the rest placed so that
    losing one host loses as little as possible. Nodes and app instances go round-robin in
    order (node i to host i); the services and monitoring to the first host; the backup
    repository to the last (away from the services when there are two hosts or more).
    Empty when the spec has no hosts. Never fails: `placement_issues` reports a unit named
    twice or not at all."""
    if not spec.hosts:
        return ()
    known = set(units(spec))
    where: dict[str, int] = {}
    for index, host in enumerate(spec.hosts):
        for unit in host.runs:
            if unit in known and unit not in where:
                where[unit] = index
    count = len(spec.hosts)
    for order, unit in enumerate(node_names(spec)):
        where.setdefault(unit, order % count)
    for i in range(1, spec.app.instances + 1):
        where.setdefault(f"app{i}", (i - 1) % count)
    where.setdefault(SERVICES, 0)
    where.setdefault(MONITORING, 0)
    where.setdefault(BACKUP, count - 1)
    ordered = units(spec)
    return tuple(
        Host(
            name=host.name,
            address=host.address,
            units=tuple(u for u in ordered if u in where and where[u] == index),
        )
        for index, host in enumerate(spec.hosts)
    )


def placement_issues(spec: StackSpec) -> list[SpecIssue]:
    """The spec's hosts against the target, each other, and what HA needs of a placement."""
    issues = target_issues(spec, spec.target)
    if not spec.hosts:
        return issues
    issues += _naming_issues(spec) + _one_host(spec)
    hosts = place(spec)
    return issues + _postgres_spread(spec, hosts) + _etcd_quorum(spec, hosts)


def target_issues(spec: StackSpec, target: str) -> list[SpecIssue]:
    """What keeps the spec's hosts from running on `target` (the spec's own, or the one
    `hastack render` is asked for)."""
    count = len(spec.hosts)
    why = {
        "local": (
            count > 0,
            "target local runs every component on this machine's loopback; hosts are for "
            "the swarm and systemd targets",
            "remove hosts, or set target: systemd (or swarm) and run `hastack render`",
        ),
        "compose": (
            count > 1,
            f"Compose runs on one host, and {count} are listed",
            "list one host, or set target: swarm (or systemd) for several",
        ),
        "kubernetes": (
            count > 0,
            "Kubernetes places the pods itself (pod anti-affinity keeps PostgreSQL nodes "
            "apart); hosts do not apply",
            "remove hosts",
        ),
        "systemd": (
            count == 0,
            "target systemd needs the hosts to render units for",
            "add hosts: [{name: db1, address: 10.0.0.11}, ...] (three for HA)",
        ),
        "swarm": (False, "", ""),
    }
    bad, message, fix = why.get(target, (False, "", ""))
    return [SpecIssue(key="hosts", message=message, fix=fix, related=("target",))] if bad else []


def _naming_issues(spec: StackSpec) -> list[SpecIssue]:
    issues = []
    known = units(spec)
    seen_names: dict[str, int] = {}
    seen_addresses: dict[str, int] = {}
    placed: dict[str, str] = {}
    for i, host in enumerate(spec.hosts):
        if host.name in seen_names:
            issues.append(
                SpecIssue(
                    key=f"hosts.{i}.name",
                    message=(
                        f"host {host.name!r} is listed twice (also hosts[{seen_names[host.name]}])"
                    ),
                    fix="give each host its own name",
                )
            )
        seen_names.setdefault(host.name, i)
        if host.address in seen_addresses:
            other = spec.hosts[seen_addresses[host.address]].name
            issues.append(
                SpecIssue(
                    key=f"hosts.{i}.address",
                    message=f"{host.address} is also the address of host {other!r}",
                    fix="give each host its own address",
                )
            )
        seen_addresses.setdefault(host.address, i)
        for j, unit in enumerate(host.runs):
            key = f"hosts.{i}.runs.{j}"
            if unit not in known:
                close = difflib.get_close_matches(unit, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                issues.append(
                    SpecIssue(
                        key=key,
                        message=f"this stack has no unit {unit!r}",
                        fix=f"{hint}units of this stack: {', '.join(known)}",
                    )
                )
            elif unit in placed:
                issues.append(
                    SpecIssue(
                        key=key,
                        message=f"{unit} is also placed on host {placed[unit]!r}",
                        fix=f"place {unit} on one host only",
                    )
                )
            else:
                placed[unit] = host.name
    return issues


def _postgres_spread(spec: StackSpec, hosts: tuple[Host, ...]) -> list[SpecIssue]:
    """PostgreSQL nodes as evenly spread as the hosts allow: two on one host while another
    has fewer means losing that host loses two copies of the data when it need not."""
    pg = node_names(spec)[: spec.postgres.nodes]
    per_host = {h.name: [u for u in h.units if u in pg] for h in hosts}
    fair = -(-len(pg) // len(hosts))  # ceil
    issues = []
    for i, host in enumerate(hosts):
        crowded = per_host[host.name]
        if len(crowded) > fair:
            issues.append(
                SpecIssue(
                    key=f"hosts.{i}.runs",
                    message=(
                        f"host {host.name!r} runs {len(crowded)} PostgreSQL nodes "
                        f"({', '.join(crowded)}) while {len(hosts)} hosts allow at most "
                        f"{fair} each: losing it loses {len(crowded)} copies of the data"
                    ),
                    fix="place the PostgreSQL nodes on different hosts (or let hastack place them)",
                    related=(f"hosts.{i}", "hosts"),
                )
            )
    return issues


def _etcd_quorum(spec: StackSpec, hosts: tuple[Host, ...]) -> list[SpecIssue]:
    """Losing any one host must leave etcd a majority, or Patroni cannot elect a leader."""
    members = spec.etcd.members
    if len(hosts) < 2 or members < 3:
        return []  # one host (or one member) is no HA at all; a warning says so
    node_members = node_names(spec)[:members]
    count = Counter(h.name for h in hosts for u in h.units if u in node_members)
    quorum = members // 2 + 1
    issues = []
    for i, host in enumerate(hosts):
        if members - count[host.name] < quorum:
            issues.append(
                SpecIssue(
                    key=f"hosts.{i}.runs",
                    message=(
                        f"host {host.name!r} runs {count[host.name]} of {members} etcd members: "
                        f"losing it leaves {members - count[host.name]}, short of the "
                        f"quorum of {quorum}, and no leader can be elected"
                    ),
                    fix=(
                        "place one etcd member per host"
                        + (
                            f"; with {len(hosts)} hosts, add a third for the third member "
                            "(with postgres.nodes: 2 it runs only etcd, as the witness dcs3)"
                            if len(hosts) < 3
                            else ""
                        )
                    ),
                    related=(f"hosts.{i}", "hosts"),
                )
            )
    return issues


def _one_host(spec: StackSpec) -> list[SpecIssue]:
    if len(spec.hosts) != 1:
        return []
    return [
        SpecIssue(
            key="hosts",
            severity="warning",
            message="one host: the stack survives losing a process, not losing the machine",
            fix="list three hosts for a stack that survives losing one",
        )
    ]
