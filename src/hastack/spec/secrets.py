"""The generated credentials every renderer may need, and their SCRAM verifiers.

The runtime generates and stores the values (0600, under the state directory); this module only
describes them, so renderers stay pure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, fields

import bcrypt

from hastack.spec import roles

SCRAM_ITERATIONS = 4096
"""PostgreSQL's default iteration count for SCRAM-SHA-256."""


SECRET_PURPOSES = {
    "postgres_password": "PostgreSQL superuser `postgres`",
    "replication_password": "PostgreSQL role `replicator` (streaming replication)",
    "rewind_password": "PostgreSQL role `rewind` (pg_rewind after a failover)",
    "app_password": (
        "the applications' PostgreSQL password: that of the login `app_login` names, which has "
        "role `app`'s rights (DML only, owns nothing)"
    ),
    "app_login": "which login applications use now, app_a or app_b (a name, not a secret)",
    "app_a_password": "PostgreSQL login `app_a` (app_password while app_login is app_a)",
    "app_b_password": "PostgreSQL login `app_b` (app_password while app_login is app_b)",
    "readonly_password": "PostgreSQL role `readonly` (SELECT only)",
    "monitor_password": "PostgreSQL role `monitor` (pg_monitor: statistics, no table data)",
    "patroni_rest_password": "Patroni REST API user `patroni` (switchover, restart, config)",
    "pgbouncer_admin_password": "PgBouncer admin console user `pgbouncer_admin`",
    "haproxy_stats_password": "HAProxy stats page user `admin`",
    "redis_password": "Redis `default` user",
    "monitoring_password": (
        "Prometheus and Alertmanager (user `hastack`, HTTPS), and Alertmanager's calls to "
        "hastack's alert receiver"
    ),
    "app_secret_key": "signs the app's session cookies and download URLs",
    "app_secret_key_accepted": (
        "another app key still accepted (never used to sign) while a rotation of "
        "app_secret_key rolls out and for its grace period; empty when none"
    ),
    "app_secret_key_accepted_until": "epoch seconds until which that key is accepted",
    "load_test_token": "X-Hastack-Load value exempting drills and benchmarks from the edge limit",
    "scram_salt_seed": "seed of the per-role SCRAM salts, so verifiers are stable (not a password)",
    "backup_cipher_pass": (
        "encrypts the backup repository (pgBackRest aes-256-cbc); without it no backup restores"
    ),
    "backup_s3_cipher_pass": (
        "encrypts the S3 repository when backup.s3 is set (its own passphrase: a copy of one "
        "repository's does not open the other)"
    ),
}
"""Every secret of a stack and what it is for; `hastack secrets list` prints this. All are
stored (a file each) but app_password, which is that of the login app_login names."""

ROLE_PASSWORDS = {
    "postgres_password": roles.SUPERUSER,
    "replication_password": roles.REPLICATION,
    "rewind_password": roles.REWIND,
    "app_a_password": roles.APP_LOGINS[0],
    "app_b_password": roles.APP_LOGINS[1],
    "readonly_password": roles.READONLY,
    "monitor_password": roles.MONITOR,
}
"""The stored secrets that are a PostgreSQL role's password, and that role."""

INITIAL_VALUES = {
    "app_login": roles.APP_LOGINS[0],
    "app_secret_key_accepted": "",
    "app_secret_key_accepted_until": "0",
}
"""Values a new stack starts with instead of a random one."""

NOT_ROTATED = {
    **dict.fromkeys(
        ("backup_cipher_pass", "backup_s3_cipher_pass"),
        "every backup and archived WAL segment in the repository is encrypted with it; a new "
        "passphrase means a new repository (keep a copy of this one off the machine)",
    ),
    "scram_salt_seed": (
        "it is not a password (it only makes the SCRAM verifiers stable); rotate the "
        "passwords themselves"
    ),
    "app_login": "it is not a secret: each rotation of app_password switches it",
    **dict.fromkeys(
        ("app_secret_key_accepted", "app_secret_key_accepted_until"),
        "rotate app_secret_key: these carry its rollout and grace period",
    ),
    **dict.fromkeys(
        ("app_a_password", "app_b_password"),
        "rotate app_password: it gives the idle login a new password, moves the "
        "applications to it, then retires the other",
    ),
}
"""Secrets `hastack secrets rotate` refuses, and why."""


@dataclass(frozen=True)
class Secrets:
    """Every secret of one stack; field names are those of SECRET_PURPOSES."""

    postgres_password: str
    replication_password: str
    rewind_password: str
    app_a_password: str
    app_b_password: str
    app_login: str
    readonly_password: str
    monitor_password: str
    patroni_rest_password: str
    pgbouncer_admin_password: str
    haproxy_stats_password: str
    redis_password: str
    monitoring_password: str
    app_secret_key: str
    app_secret_key_accepted: str
    app_secret_key_accepted_until: str
    load_test_token: str
    scram_salt_seed: str
    backup_cipher_pass: str
    backup_s3_cipher_pass: str

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @property
    def app_password(self) -> str:
        return self.password_of(self.app_login)

    @property
    def app_standby_login(self) -> str:
        return next(login for login in roles.APP_LOGINS if login != self.app_login)

    @property
    def app_standby_password(self) -> str:
        return self.password_of(self.app_standby_login)

    def password_of(self, login: str) -> str:
        """An application login's password (app_a, app_b)."""
        value: str = getattr(self, f"{login}_password")
        return value

    def scram(self, role: str, password: str) -> str:
        """The SCRAM-SHA-256 verifier PostgreSQL and PgBouncer store for `role`."""
        salt = hmac.new(self.scram_salt_seed.encode(), role.encode(), hashlib.sha256).digest()
        return scram_sha256_verifier(password, salt[:16])

    def bcrypt_hash(self, user: str, password: str) -> str:
        """A bcrypt hash of `password` (Prometheus' and Alertmanager's web config), with a
        salt derived from the seed: the same password always renders the same file."""
        raw = hmac.new(self.scram_salt_seed.encode(), b"bcrypt:" + user.encode(), hashlib.sha256)
        salt = b"$2b$" + str(BCRYPT_COST).encode() + b"$" + bcrypt_base64(raw.digest()[:16])
        return bcrypt.hashpw(password.encode(), salt).decode()


BCRYPT_COST = 10
"""bcrypt's work factor: ~50 ms per check (exporter-toolkit caches successful checks)."""

_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def bcrypt_base64(raw: bytes) -> bytes:
    """16 bytes in bcrypt's own base64 (22 characters, its alphabet, no padding)."""
    return base64.b64encode(raw).rstrip(b"=").translate(bytes.maketrans(_STANDARD, _BCRYPT))


def scram_sha256_verifier(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """RFC 5802/7677 verifier in PostgreSQL's `SCRAM-SHA-256$iter:salt$StoredKey:ServerKey` form.

    Generated passwords are ASCII, for which SASLprep is the identity.
    """
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


@dataclass(frozen=True)
class S3Credentials:
    """The access key of the S3 repository (backup.s3): the operator's, read from the file
    the spec names at each `up`, never generated or stored by hastack."""

    key: str
    secret: str
