"""A standby cluster's ties to its primary: the role passwords it takes from it, the CA it
trusts, and whether it is (still) a standby (Patroni's DCS says, not the spec: the spec
says how the cluster was born, `promote-standby` changes what it is)."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import psycopg

from hastack.errors import HastackError
from hastack.runtime import secret_store
from hastack.runtime.files import ensure_dir, read_regular, write_atomic
from hastack.runtime.preflight import root_trusts_resolved
from hastack.runtime.tls import ensure_primary_repo_certs
from hastack.spec import roles
from hastack.spec.connection import pg_url
from hastack.spec.plan import StackPlan
from hastack.spec.secrets import ROLE_PASSWORDS

if TYPE_CHECKING:
    from hastack.runtime.stack import Stack

SHARED_SECRETS = (
    *ROLE_PASSWORDS,
    "app_login",
    "scram_salt_seed",
    "app_secret_key",
    "app_secret_key_accepted",
    "app_secret_key_accepted_until",
)
"""What a standby cluster takes from its primary. The roles' passwords live in the database
it copies (and the SCRAM verifiers PgBouncer checks derive from them and the salt seed);
the app's keys so sessions and signed URLs survive a move to this region. Its own: the
REST, PgBouncer, HAProxy and Redis credentials, and its backup repository's passphrase."""


def _refuse_untrusted(path: Path, what: str) -> None:
    """Root copies passwords from the primary's state directory and trusts its CA: only
    when no one but root can have put them there."""
    if not path.exists():
        return
    why = root_trusts_resolved(path)
    if why is not None:
        raise HastackError(
            f"refusing to take {what} from {path}: {why}",
            "the primary's state directory must be root's alone (hastack makes it so)",
        )


def require_primary_secrets(plan: StackPlan) -> None:
    """Before anything is created for a standby cluster: its primary's secrets must be
    readable (or copied before: the primary may be gone now)."""
    standby = plan.standby
    if standby is None:
        return
    source, own = standby.primary_paths.secrets_dir, plan.paths.secrets_dir
    _refuse_untrusted(source, "the roles' passwords")
    _refuse_untrusted(standby.primary_paths.ca_cert, "the primary's CA")
    missing = [n for n in SHARED_SECRETS if read_regular(source / n) is None]
    if missing and not all((own / n).exists() for n in SHARED_SECRETS):
        raise HastackError(
            f"the primary stack {standby.primary_name!r} has no secrets in {source} (missing "
            f"{missing[0]}): a standby cluster takes its roles' passwords from its primary",
            "bring the primary up first (hastack -c PRIMARY_SPEC up), then this one",
        )


def adopt_primary_secrets(plan: StackPlan) -> list[str]:
    """Copy the shared secrets from the primary's state directory (on every `up`: a rotation
    there reaches the standby at its next `up`). The names that changed. With the primary
    gone (a region lost), what was copied before stays."""
    standby = plan.standby
    if standby is None:
        return []
    source = standby.primary_paths.secrets_dir
    own = plan.paths.secrets_dir
    _refuse_untrusted(source, "the roles' passwords")
    values = {}
    for name in SHARED_SECRETS:
        data = read_regular(source / name)
        if data is None:
            if not (own / name).exists():
                raise HastackError(
                    f"the primary stack {standby.primary_name!r} has no secret {name} in "
                    f"{source}: a standby cluster takes its roles' passwords from its primary",
                    "bring the primary up first (hastack -c PRIMARY_SPEC up), then this one",
                )
            return []  # the primary is gone: keep what was copied
        values[name] = data.decode().strip()
    ensure_dir(own, "root", 0o700)
    changed = []
    for name, value in values.items():
        path = own / name
        if not path.exists() or path.read_text(encoding="utf-8").strip() != value:
            secret_store.store(own, name, value)
            changed.append(name)
    return changed


def write_trusted_ca(plan: StackPlan) -> bool:
    """The CA bundle replication trusts: this stack's CA and the primary's (kept as it was
    when the primary's cannot be read any more)."""
    standby = plan.standby
    if standby is None:
        return False
    own = read_regular(plan.paths.ca_cert)
    _refuse_untrusted(standby.primary_paths.ca_cert, "the primary's CA")
    theirs = read_regular(standby.primary_paths.ca_cert)
    if own is None:
        raise HastackError(f"no CA at {plan.paths.ca_cert}", "hastack up")
    if theirs is None:
        if plan.paths.trusted_ca.exists():
            return False
        raise HastackError(
            f"cannot read the primary stack's CA ({standby.primary_paths.ca_cert})",
            "bring the primary up first (hastack -c PRIMARY_SPEC up), then this one",
        )
    bundle = own.decode() + theirs.decode()
    return write_atomic(plan.paths.trusted_ca, bundle, "root", 0o644)


def issue_primary_repo_certs(plan: StackPlan) -> list[Path]:
    """The nodes' certificates for the primary's repository host (WAL when streaming
    breaks), signed with the primary's CA key: only a key no one but root could have put
    there."""
    standby = plan.standby
    if standby is None:
        return []
    _refuse_untrusted(standby.primary_paths.ca_key, "the primary's CA key")
    _refuse_untrusted(standby.primary_paths.ca_cert, "the primary's CA")
    return ensure_primary_repo_certs(plan)


def interrupt_primary_fetches(plan: StackPlan) -> int:
    """End the nodes' fetches from the lost primary's repository that are under way (with
    the primary gone each waits out its connection timeout, and a promotion waits for it).
    pgBackRest exits on TERM with its own code, which PostgreSQL takes for "not there".
    How many were ended."""
    standby = plan.standby
    if standby is None:
        return 0
    users = {n.user for n in plan.postgres_nodes}
    stanza = f"--stanza={standby.primary_stanza}"
    ended = 0
    for proc in psutil.process_iter(["username", "name", "cmdline"]):
        argv = proc.info["cmdline"] or []
        if (
            proc.info["username"] in users
            and proc.info["name"] == "pgbackrest"
            and stanza in argv
            and "archive-get" in argv
        ):
            with contextlib.suppress(psutil.Error):
                proc.terminate()
                ended += 1
    return ended


def is_standby(stack: Stack, leader: str | None = None) -> bool:
    """The cluster replicates from another (Patroni's dynamic config has `standby_cluster`).
    Before the DCS holds a config (first bootstrap), the spec decides."""
    if stack.plan.standby is None:
        return False
    try:
        config = stack.patroni(
            leader or stack.leader() or stack.plan.postgres_nodes[0].name
        ).config()
    except HastackError:
        return True
    return bool(config.get("standby_cluster"))


@dataclass(frozen=True)
class StandbyLag:
    """How far the standby cluster's leader is behind, as the primary reports it."""

    primary_reachable: bool
    lag_bytes: int | None = None
    """The primary's current WAL position minus what the standby leader replayed."""
    replay_lag_s: float | None = None
    """PostgreSQL's replay_lag: commit on the primary -> replayed here (None when idle)."""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


LAG_QUERY = """
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
       extract(epoch FROM replay_lag)::float8
  FROM pg_stat_replication WHERE application_name = %s
"""


def primary_url(stack: Stack) -> str:
    """The primary's read-write port as the `monitor` role (whose password the standby
    shares), verified by the primary's CA."""
    standby = stack.plan.standby
    assert standby is not None
    return pg_url(
        roles.MONITOR,
        stack.secrets.monitor_password,
        standby.primary_host,
        standby.primary_port,
        stack.plan.spec.postgres.database,
        stack.plan.paths.trusted_ca,
    )


def primary_reachable(stack: Stack) -> bool | str:
    """True when the primary answers a query on its read-write port; else why not."""
    try:
        with psycopg.connect(primary_url(stack), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return True


def standby_lag(stack: Stack, leader: str) -> StandbyLag:
    try:
        with psycopg.connect(primary_url(stack), connect_timeout=2) as conn:
            row = conn.execute(LAG_QUERY, (leader,)).fetchone()
    except psycopg.Error as exc:
        return StandbyLag(False, error=str(exc).strip().splitlines()[0][:200])
    if row is None:
        return StandbyLag(True, error=f"the primary has no replication connection from {leader}")
    return StandbyLag(True, int(row[0]), None if row[1] is None else round(float(row[1]), 3))
