"""hastack's own metrics, for Prometheus: the watcher's heartbeat and fences, each
repository's newest backup, every certificate's expiry.

The watcher (root) writes them every few seconds, in Prometheus' text format, to a file in a
directory of root's that the node exporter's textfile collector reads (its
`node_textfile_mtime_seconds` also shows when it was last written). Rendering is pure;
reading the inputs goes through `read_regular` (files other users write: the backup
scheduler's state, node certificates), never following a link or blocking on a FIFO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from hastack.runtime.files import read_json_object, read_regular

MAX_READ = 65536


@dataclass(frozen=True)
class HastackMetrics:
    heartbeat_at: float
    fences: Mapping[str, int] = field(default_factory=dict)
    """Fences per node since the watcher started."""
    stanza: str = ""
    backups: Mapping[str, float] = field(default_factory=dict)
    """Repository (`repo1`) -> when its newest good backup ended (epoch s)."""
    certificates: Mapping[str, float] = field(default_factory=dict)
    """Certificate name -> its notAfter (epoch s)."""


def render(metrics: HastackMetrics) -> str:
    registry = CollectorRegistry()
    Gauge(
        "hastack_watcher_heartbeat_timestamp_seconds",
        "When the fencing watcher last polled",
        registry=registry,
    ).set(metrics.heartbeat_at)
    fences = Counter(
        "hastack_watcher_fences",
        "Nodes the watcher fenced since it started",
        ["pg_node"],
        registry=registry,
    )
    for node, count in sorted(metrics.fences.items()):
        fences.labels(node).inc(count)
    backups = Gauge(
        "hastack_backup_last_success_timestamp_seconds",
        "When the repository's newest good backup ended",
        ["stanza", "repo"],
        registry=registry,
    )
    for repo, at in sorted(metrics.backups.items()):
        backups.labels(metrics.stanza, repo).set(at)
    certs = Gauge(
        "hastack_certificate_expiry_timestamp_seconds",
        "When the certificate expires",
        ["certificate"],
        registry=registry,
    )
    for name, at in sorted(metrics.certificates.items()):
        certs.labels(name).set(at)
    return generate_latest(registry).decode()


def backups_from_state(path: Path) -> dict[str, float]:
    """`last_backup_at` from the backup scheduler's state file; {} when unreadable."""
    data = read_json_object(path, MAX_READ)
    found = data.get("last_backup_at") if data is not None else None
    if not isinstance(found, dict):
        return {}
    return {str(k): float(v) for k, v in found.items() if isinstance(v, int | float)}


def certificate_expiry(paths: Mapping[str, str]) -> dict[str, float]:
    """notAfter of each certificate file (the first certificate in it); missing or
    unreadable ones are left out."""
    found = {}
    for name, path in paths.items():
        raw = read_regular(Path(path), MAX_READ)
        if raw is None:
            continue
        try:
            cert = x509.load_pem_x509_certificate(raw)
        except ValueError:
            continue
        found[name] = cert.not_valid_after_utc.timestamp()
    return found
