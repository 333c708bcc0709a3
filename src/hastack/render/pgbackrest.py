"""pgBackRest's configuration: each node's, and the repository host's. Pure.

The layout is pgBackRest's "dedicated repository host" over its TLS protocol: a repository
user owns the encrypted repository and runs `pgbackrest server` on its own address; every
node runs `pgbackrest server` too (as the node's user, so the repository host can read its
data directory for a backup). Nodes push WAL and restore through the repository host and
never hold the cipher passphrase; each side admits only the other's certificate from the
stack's CA, by common name. On one machine this is what it is on many: the node and the
repository host share nothing but the network.
"""

from __future__ import annotations

import json

from hastack.spec import roles
from hastack.spec.model import S3_REPO
from hastack.spec.plan import Node, StackPlan
from hastack.spec.secrets import S3Credentials, Secrets

BACKUP_CERT_NAME = "backup"
"""Common name of the repository host's certificate; nodes admit only it."""

STANDBY_CERT_NAME = "standby"
"""Common name of a standby cluster's certificate from this stack's CA: the repository host
admits it to fetch WAL (only root, holding the CA key, can make one)."""


PGBACKREST_WORK_DIRS = ("spool", "lock", "log")
"""Under each pgBackRest work directory (pgBackRest does not create its log directory)."""


def ini_text(sections: dict[str, list[tuple[str, str | int]]], header: str) -> str:
    lines = [header]
    for name, options in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key}={value}" for key, value in options]
        lines.append("")
    return "\n".join(lines)


def common_options(plan: StackPlan, work: str) -> list[tuple[str, str | int]]:
    backup = plan.spec.backup
    return [
        ("compress-type", "zst"),
        ("compress-level", backup.compress_level),
        ("process-max", backup.process_max),
        ("spool-path", f"{work}/spool"),
        ("lock-path", f"{work}/lock"),
        ("log-path", f"{work}/log"),
        ("log-level-console", "warn"),
        ("log-level-file", "info"),
    ]


def pgbackrest_command(plan: StackPlan, node: Node, *args: str) -> str:
    """A pgBackRest command line as the node runs it (archive_command, restore_command)."""
    binary = plan.spec.binaries.pgbackrest
    return " ".join(
        [str(binary), f"--config={node.paths.pgbackrest_config}", f"--stanza={plan.stanza}", *args]
    )


def archive_command(plan: StackPlan, node: Node) -> str:
    return pgbackrest_command(plan, node, "archive-push", "%p")


def restore_command(plan: StackPlan, node: Node) -> str:
    return pgbackrest_command(plan, node, "archive-get", "%f", '"%p"')


def render_node_pgbackrest(plan: StackPlan, node: Node) -> str:
    spec = plan.spec
    port = plan.repo_port
    tls = {
        "cert": str(node.paths.tls_cert),
        "key": str(node.paths.tls_key),
        "ca": str(plan.paths.ca_cert),
    }
    # Every repository is reached through the repository host (which alone holds the S3
    # key and the passphrases): archive-push sends each segment to each of them.
    repo_hosts: list[tuple[str, str | int]] = []
    for repo in plan.backup_repos:
        repo_hosts += [
            (f"repo{repo}-host", plan.backup_address),
            (f"repo{repo}-host-type", "tls"),
            (f"repo{repo}-host-port", port),
            (f"repo{repo}-host-cert-file", tls["cert"]),
            (f"repo{repo}-host-key-file", tls["key"]),
            (f"repo{repo}-host-ca-file", tls["ca"]),
            # The remote end reads its own config (not /etc/pgbackrest.conf, not ours).
            (f"repo{repo}-host-config", str(plan.paths.backup_config)),
        ]
    global_options: list[tuple[str, str | int]] = [
        *repo_hosts,
        # archive-push returns as soon as the segment is in the local spool queue; a
        # background process ships it (PostgreSQL never waits on the network per segment).
        ("archive-async", "y"),
        *common_options(plan, str(node.paths.pgbackrest_dir)),
        ("tls-server-address", node.address),
        # The node's own server keeps backup.port; `port` is the repository's, one more
        # when the repository shares this node's host.
        ("tls-server-port", spec.backup.port),
        ("tls-server-cert-file", tls["cert"]),
        ("tls-server-key-file", tls["key"]),
        ("tls-server-ca-file", tls["ca"]),
        ("tls-server-auth", f"{BACKUP_CERT_NAME}={plan.stanza}"),
    ]
    stanza: list[tuple[str, str | int]] = [
        ("pg1-path", str(node.paths.pgdata)),
        ("pg1-port", spec.postgres.port),
        ("pg1-socket-path", str(node.paths.socket_dir)),
        ("pg1-user", roles.SUPERUSER),
    ]
    # PostgreSQL runs archive-get (restore_command) before it tries streaming, at every
    # start of a replica: with the repository host down, pgBackRest would retry the
    # connection for io-timeout (60 s) each time. Fetched synchronously with a short
    # timeout, the replica falls through to streaming within seconds.
    archive_get: list[tuple[str, str | int]] = [("archive-async", "n"), ("io-timeout", 5)]
    header = (
        f"# Generated by hastack for stack {plan.name!r}, node {node.name}. Do not edit.\n"
        "# The repository, its passphrase and the backups live on the repository host.\n"
    )
    push: list[tuple[str, str | int]] = []
    if plan.spec.backup.s3 is not None:
        # pgBackRest pushes each segment to every repository and reports the segment done
        # only when all have it. With S3 out of reach, each push waits for its connection
        # attempts (passed on to the repository host): at the default 60 s per attempt a
        # push took minutes and the local repository got nothing meanwhile; at 5 s the local
        # one gets every segment within ~1 min (measured: 41 s per round).
        push = [("io-timeout", 5)]
    sections = {
        "global": global_options,
        **({"global:archive-push": push} if push else {}),
        "global:archive-get": archive_get,
        plan.stanza: stanza,
    }
    return ini_text(sections, header)


PRIMARY_ARCHIVE_GET_TIMEOUT_S = 10
"""The most one fetch from the primary's repository may take (a 16 MB segment, compressed,
over a link of at least ~2 MB/s)."""


def primary_restore_command(plan: StackPlan) -> str | None:
    """A standby cluster's restore_command: WAL from the primary stack's repository. The
    same on every node (it lives in the DCS): each node's config comes from PGBACKREST_CONFIG
    in its Patroni's environment (`standby_environment`)."""
    standby = plan.standby
    if standby is None or standby.primary_backup_host is None:
        return None
    binary = plan.spec.binaries.pgbackrest
    # Bounded: PostgreSQL's startup process waits for it, and so does a promotion. With the
    # primary's repository host refusing, pgBackRest gives up after ~2 io-timeouts; frozen
    # or behind a black hole, it would wait for its protocol timeout (30 min). `timeout`
    # ends it with TERM (exit 124, which PostgreSQL takes for "not there", never a crash).
    # Once promote-standby gave the primary up, not at all (exit 1: "not there").
    return (
        f"[ ! -e {plan.paths.primary_abandoned} ] && "
        f"/usr/bin/timeout {PRIMARY_ARCHIVE_GET_TIMEOUT_S} "
        f'{binary} --stanza={standby.primary_stanza} archive-get %f "%p"'
    )


def standby_environment(plan: StackPlan, node: Node) -> dict[str, str]:
    """For a stack born a standby cluster, whatever it is now: a promotion must not change
    Patroni's environment (supervisord would restart it, and PostgreSQL with it). hastack's
    own pgBackRest commands name their config; only the restore_command above reads this."""
    if plan.spec.standby_cluster is None or not node.runs_postgres:
        return {}
    return {"PGBACKREST_CONFIG": str(node.paths.primary_repo_config)}


def render_primary_repo_pgbackrest(plan: StackPlan, node: Node) -> str | None:
    """A standby cluster's node fetching WAL from the primary's repository host (archive-get
    only: nothing else uses this config)."""
    standby = plan.standby
    if standby is None or standby.primary_backup_host is None:
        return None
    global_options: list[tuple[str, str | int]] = [
        ("repo1-host", standby.primary_backup_host),
        ("repo1-host-type", "tls"),
        ("repo1-host-port", standby.primary_backup_port),
        ("repo1-host-cert-file", str(node.paths.primary_repo_cert)),
        ("repo1-host-key-file", str(node.paths.primary_repo_key)),
        # The bundle of both CAs: the primary's signed its repository host's certificate.
        ("repo1-host-ca-file", str(plan.paths.trusted_ca)),
        ("repo1-host-config", str(standby.primary_paths.backup_config)),
        # Synchronous, short timeout: PostgreSQL asks for the next segment before each
        # streaming attempt; with the primary's region gone it must fall through quickly
        # (measured: refused connections end the command after 2.1 s at 1 s, 10.1 s at 5 s).
        ("archive-async", "n"),
        ("io-timeout", 1),
        *common_options(plan, str(node.paths.pgbackrest_dir)),
    ]
    stanza: list[tuple[str, str | int]] = [
        ("pg1-path", str(node.paths.pgdata)),
        ("pg1-port", plan.spec.postgres.port),
        ("pg1-socket-path", str(node.paths.socket_dir)),
    ]
    header = (
        f"# Generated by hastack for stack {plan.name!r}, node {node.name}: WAL from the\n"
        f"# repository of the primary stack {standby.primary_name!r}. Do not edit.\n"
    )
    return ini_text({"global": global_options, standby.primary_stanza: stanza}, header)


def _s3_options(
    plan: StackPlan, secrets: Secrets, s3: S3Credentials | None
) -> list[tuple[str, str | int]]:
    """repo2: the S3-compatible repository, when the spec has one. Without its credentials
    (a renderer asked before they were read) it is left out rather than half-written."""
    spec = plan.spec.backup.s3
    if spec is None or s3 is None:
        return []
    n = f"repo{S3_REPO}"
    options: list[tuple[str, str | int]] = [
        (f"{n}-type", "s3"),
        (f"{n}-path", f"{spec.path.rstrip('/')}/{plan.stanza}"),
        (f"{n}-s3-endpoint", spec.endpoint),
        (f"{n}-storage-port", spec.port),
        (f"{n}-s3-bucket", spec.bucket),
        (f"{n}-s3-region", spec.region),
        (f"{n}-s3-uri-style", spec.uri_style),
        (f"{n}-s3-key", s3.key),
        (f"{n}-s3-key-secret", s3.secret),
        (f"{n}-storage-verify-tls", "y" if spec.verify_tls else "n"),
        (f"{n}-cipher-type", "aes-256-cbc"),
        (f"{n}-cipher-pass", secrets.backup_s3_cipher_pass),
        (f"{n}-retention-full", spec.retention_full or plan.spec.backup.retention_full),
        (f"{n}-retention-diff", plan.spec.backup.retention_diff),
    ]
    if spec.ca_file is not None:
        options.append((f"{n}-storage-ca-file", str(spec.ca_file)))
    return options


def render_repo_pgbackrest(
    plan: StackPlan, secrets: Secrets, s3: S3Credentials | None = None
) -> str:
    spec = plan.spec
    backup = spec.backup
    paths = plan.paths
    cert, key, ca = str(paths.backup_tls_cert), str(paths.backup_tls_key), str(paths.ca_cert)
    global_options: list[tuple[str, str | int]] = [
        ("repo1-path", str(paths.backup_repo)),
        ("repo1-cipher-type", "aes-256-cbc"),
        ("repo1-cipher-pass", secrets.backup_cipher_pass),
        ("repo1-retention-full", backup.retention_full),
        ("repo1-retention-diff", backup.retention_diff),
        *_s3_options(plan, secrets, s3),
        # A backup starts with an immediate checkpoint rather than waiting for a spread one.
        ("start-fast", "y"),
        *common_options(plan, str(paths.backup_work_dir)),
        ("tls-server-address", plan.backup_address),
        ("tls-server-port", plan.repo_port),
        ("tls-server-cert-file", cert),
        ("tls-server-key-file", key),
        ("tls-server-ca-file", ca),
        *(("tls-server-auth", f"{n.name}={plan.stanza}") for n in plan.postgres_nodes),
        # A standby cluster in another region fetches WAL from here when streaming breaks.
        ("tls-server-auth", f"{STANDBY_CERT_NAME}={plan.stanza}"),
    ]
    stanza: list[tuple[str, str | int]] = []
    # Every node, in order: pgBackRest finds the current primary among them itself, so the
    # same file keeps working after a failover.
    for i, node in enumerate(plan.postgres_nodes, start=1):
        stanza += [
            (f"pg{i}-host", node.address),
            (f"pg{i}-host-type", "tls"),
            (f"pg{i}-host-port", backup.port),
            (f"pg{i}-host-cert-file", cert),
            (f"pg{i}-host-key-file", key),
            (f"pg{i}-host-ca-file", ca),
            (f"pg{i}-host-config", str(node.paths.pgbackrest_config)),
            (f"pg{i}-path", str(node.paths.pgdata)),
            (f"pg{i}-port", spec.postgres.port),
            (f"pg{i}-socket-path", str(node.paths.socket_dir)),
            (f"pg{i}-user", roles.SUPERUSER),
        ]
    header = (
        f"# Generated by hastack for stack {plan.name!r}: the repository host. Do not edit.\n"
        "# Holds the repository's cipher passphrase: readable by the repository user only.\n"
    )
    return ini_text({"global": global_options, plan.stanza: stanza}, header)


def render_restore_pgbackrest(
    plan: StackPlan, secrets: Secrets, s3: S3Credentials | None = None
) -> str:
    """The repository host restoring into its own scratch directory (a point-in-time
    restore to look at, a backup's verification): the repository is local, the target too."""
    paths = plan.paths
    global_options: list[tuple[str, str | int]] = [
        ("repo1-path", str(paths.backup_repo)),
        ("repo1-cipher-type", "aes-256-cbc"),
        ("repo1-cipher-pass", secrets.backup_cipher_pass),
        *_s3_options(plan, secrets, s3),
        *common_options(plan, str(paths.backup_work_dir)),
    ]
    stanza: list[tuple[str, str | int]] = [("pg1-path", str(paths.scratch_pgdata))]
    header = (
        f"# Generated by hastack for stack {plan.name!r}: scratch restores. Do not edit.\n"
        "# Holds the repository's cipher passphrase: readable by the repository user only.\n"
    )
    return ini_text({"global": global_options, plan.stanza: stanza}, header)


def render_pgbackrest_pgpass(plan: StackPlan, node: Node, secrets: Secrets) -> str:
    """The superuser's password for the node's own socket (pgBackRest's backup connection)."""
    socket = str(node.paths.socket_dir).replace("\\", "\\\\").replace(":", "\\:")
    return f"{socket}:{plan.spec.postgres.port}:*:{roles.SUPERUSER}:{secrets.postgres_password}\n"


def render_scheduler_config(plan: StackPlan) -> str:
    """The backup scheduler's settings (runtime/backup_scheduler.py reads them)."""
    schedule = plan.spec.backup.schedule
    hour = 3600.0
    config = {
        "pgbackrest": str(plan.spec.binaries.pgbackrest),
        "config": str(plan.paths.backup_config),
        "stanza": plan.stanza,
        "repos": list(plan.backup_repos),
        "state_file": str(plan.paths.backup_scheduler_state),
        "poll_s": 30.0,
        "schedule": {
            "full_every_s": schedule.full_every_h * hour,
            "diff_every_s": schedule.diff_every_h * hour,
            "incr_every_s": schedule.incr_every_h * hour,
            "retry_s": 60.0,
            "verify_after_full": schedule.verify_after_full,
        },
        # The spec (it holds no secret): verifying a backup restores it into the scratch
        # instance, whose paths and settings derive from it.
        "spec": plan.spec.model_dump(mode="json"),
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


TARGET_TYPES = {
    "time": "time",
    "lsn": "lsn",
    "name": "name",
    "latest": "default",
    "immediate": "immediate",
}
"""hastack's target kinds -> pgBackRest's restore types. immediate: the end of one backup
(a verification restores exactly the set it checks)."""


def restore_options(kind: str, target: str | None, set_label: str | None = None) -> list[str]:
    """pgBackRest restore options for a target kind (time, lsn, name, latest, immediate).
    No `--set` with a time target: pgBackRest then picks the newest backup that ends before
    it (a set that ends after the target would silently restore past it)."""
    if kind not in TARGET_TYPES:
        raise ValueError(f"unknown restore target kind {kind!r}")
    options = [f"--type={TARGET_TYPES[kind]}", "--archive-mode=off"]
    if kind in ("time", "lsn", "name"):
        options += [f"--target={target}"]
    if kind != "latest":
        options.append("--target-action=promote")
    if set_label is not None:
        if kind == "time":
            raise ValueError("a time target picks its own backup set")
        options.append(f"--set={set_label}")
    return options
