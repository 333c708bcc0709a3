"""`hastack secrets`: the one command that prints a secret, and the one that rotates them.

A rotation never leaves a window in which the running stack and the stored secret disagree
for long: the component that checks the secret learns the new value first (or accepts both),
then the stored value changes, then `up` converges every config and client to it, and last
the old value is removed where it was kept alongside. Whether the old value is refused
afterwards is then asked of the live component, never assumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from hastack.app.keys import SESSION_TTL_S, SIGNED_URLS, derive_key
from hastack.app.signing import sign_url
from hastack.errors import HastackError
from hastack.ops.up import up
from hastack.polling import WaitTimeout, poll
from hastack.runtime import secret_store
from hastack.runtime.locks import exclusive
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack
from hastack.runtime.standby import SHARED_SECRETS, is_standby
from hastack.spec import roles
from hastack.spec.secrets import NOT_ROTATED, ROLE_PASSWORDS, SECRET_PURPOSES, Secrets

Answer = tuple[bool | None, str]
"""Whether the old value is refused (None: the question could not be asked), and the evidence."""


DEFAULT_GRACE_S = float(SESSION_TTL_S)
"""How long cookies and URLs signed with a rotated-out app key stay valid: a session's life,
so that a rotation signs no one out."""


def show_secret(stack: Stack, name: str) -> str:
    _known(name)
    value: str = getattr(stack.secrets, name)
    return value


def _known(name: str) -> None:
    if name not in SECRET_PURPOSES:
        raise HastackError(
            f"no secret named {name!r}; known: {', '.join(SECRET_PURPOSES)}",
            "hastack secrets list",
        )


@dataclass
class RotationResult:
    secret: str
    elapsed_s: float
    reloaded: list[str]
    """What `up` reloaded or restarted to take the new value."""
    old_refused: bool | None
    """Whether the live component refuses the old value now (None: it could not be asked)."""
    evidence: str
    grace_until: float | None = None
    """app_secret_key: the old key is accepted until then, by design (epoch seconds)."""

    @property
    def ok(self) -> bool:
        """The old value is treated as promised: refused, or within its grace accepted."""
        if self.grace_until is not None and time.time() < self.grace_until:
            return self.old_refused is False
        return self.old_refused is True

    def as_dict(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "ok": self.ok,
            "elapsed_s": self.elapsed_s,
            "reloaded": self.reloaded,
            "old_refused": self.old_refused,
            "grace_until": self.grace_until,
            "evidence": self.evidence,
        }


def rotate_secret(
    stack: Stack,
    name: str,
    spec_file: Path | None = None,
    progress: Progress | None = None,
    grace_s: float = DEFAULT_GRACE_S,
) -> RotationResult:
    """Give secret `name` a new random value across the running stack. `stack` reads the
    secrets again afterwards (a drill goes on using it). `grace_s` (app_secret_key only): how
    long cookies and URLs signed with the old key stay valid (default: a session's life)."""
    progress = progress or NullProgress()
    _known(name)
    if name in NOT_ROTATED:
        raise HastackError(f"{name} is not rotated: {NOT_ROTATED[name]}")
    standby = stack.plan.standby
    if standby is not None and name in SHARED_SECRETS and is_standby(stack):
        raise HastackError(
            f"{name} of a standby cluster is its primary's ({standby.primary_name}): the "
            "standby holds a read-only copy of the primary's roles",
            f"rotate it on the primary (hastack -c PRIMARY_SPEC secrets rotate {name}), "
            "then `hastack up` here",
        )
    t0 = time.monotonic()
    paths = stack.plan.paths
    # `up`'s own lock, held across every step: no other `up` (an operator's, the watcher's)
    # may render the configs half way through, with one value stored and not yet applied.
    with exclusive(paths.up_lock, "hastack up or secrets rotate", 900, progress):
        rotation = _Rotation(stack, name, spec_file, progress)
        old = stack.secrets  # what the old value is asked with, once the new one is in place
        grace_until = None
        if name == "app_password":
            _move_app_login(rotation)
        elif name == "app_secret_key":
            until = _move_app_key(rotation, grace_s)
            grace_until = until if grace_s > 0 else None
        else:
            _replace(rotation, name)

        def ask() -> Answer:
            return old_secret_refused(stack, name, old)

        # Within a grace period the old key is meant to be accepted: one look says it is.
        refused, evidence = ask() if grace_until is not None else _refused_once_reloaded(ask)
    return RotationResult(
        secret=name,
        elapsed_s=round(time.monotonic() - t0, 2),
        reloaded=sorted(set(rotation.reloaded)),
        old_refused=refused,
        evidence=evidence,
        grace_until=grace_until,
    )


@dataclass
class _Rotation:
    stack: Stack
    name: str
    spec_file: Path | None
    progress: Progress
    reloaded: list[str] = field(default_factory=list)

    def store(self, name: str, value: str) -> None:
        secret_store.store(self.stack.plan.paths.secrets_dir, name, value)
        self.stack.forget_secrets()
        self.progress.done(f"{name} stored")

    def converge(self, live: frozenset[str] = frozenset()) -> None:
        """`up`, so every config and client takes the stored values."""
        self.progress.step("converging the stack to the stored secrets (hastack up)")
        try:
            result = up(self.stack, self.spec_file, self.progress, applied_live=live)
        except HastackError as exc:
            raise HastackError(
                f"{self.name} has its new value, but the stack did not take it everywhere: "
                f"{exc.what}",
                f"fix what stopped it, then `hastack secrets rotate {self.name}` again (the "
                "old value may still be accepted until a rotation completes)",
                exc.details,
            ) from exc
        self.reloaded += result.reloaded


def _replace(rotation: _Rotation, name: str) -> None:
    """One secret, one new value: whoever checks it learns the value first (or accepts both)."""
    stack, progress = rotation.stack, rotation.progress
    old, new = getattr(stack.secrets, name), secret_store.new_value()
    live: frozenset[str] = frozenset()
    if name in ROLE_PASSWORDS:
        progress.step(f"PostgreSQL role {ROLE_PASSWORDS[name]!r}: new password")
        _set_role_password(stack, ROLE_PASSWORDS[name], new)
    elif name == "redis_password":
        progress.step("Redis accepts the new password alongside the old one")
        stack.redis().add_password(new)
        live = frozenset({"redis"})
    rotation.store(name, new)
    rotation.converge(live)
    if name == "redis_password":
        progress.step("Redis drops the old password (every instance has restarted)")
        stack.redis().remove_password(old)


ROLLOUT_S = 3600.0
"""How long the next app key is accepted before it signs: enough for every instance to
restart onto it; a rotation cut short leaves it accepted no longer than this."""


def _move_app_key(rotation: _Rotation, grace_s: float) -> float:
    """Two rollouts, so no instance ever meets a cookie it cannot verify: every instance
    first accepts the new key (still signing with the old), then signs with the new one and
    accepts the old for `grace_s` seconds. Returns when the old key stops being accepted."""
    stack, progress = rotation.stack, rotation.progress
    old, new = stack.secrets.app_secret_key, secret_store.new_value()
    progress.step("every app instance accepts the new key (the old one still signs)")
    rotation.store("app_secret_key_accepted_until", str(int(time.time() + ROLLOUT_S)))
    rotation.store("app_secret_key_accepted", new)
    rotation.converge()
    progress.step(f"the new key signs; the old one is accepted for {grace_s:g} s more")
    until = time.time() + grace_s
    rotation.store("app_secret_key_accepted_until", str(int(until)))
    # No grace: the old key is not even written down any more.
    rotation.store("app_secret_key_accepted", old if grace_s > 0 else "")
    rotation.store("app_secret_key", new)
    rotation.converge()
    return until


def _move_app_login(rotation: _Rotation) -> None:
    """PostgreSQL keeps one password per role, so the applications move between two logins:
    the idle one gets the new password (PgBouncer learns it), the applications restart onto
    it one instance at a time, and only then does the old login get a random password no
    one holds. Each step stores one file, so a rotation cut short leaves a consistent stack."""
    stack, progress = rotation.stack, rotation.progress
    old_login, new_login = stack.secrets.app_login, stack.secrets.app_standby_login
    new = secret_store.new_value()
    progress.step(f"{new_login} (idle) gets the new password")
    _set_role_password(stack, new_login, new)
    rotation.store(f"{new_login}_password", new)
    rotation.converge()
    progress.step(f"the applications move from {old_login} to {new_login}")
    rotation.store("app_login", new_login)
    rotation.converge()
    progress.step(f"{old_login} retired: a random password no one holds")
    retired = secret_store.new_value()
    _set_role_password(stack, old_login, retired)
    rotation.store(f"{old_login}_password", retired)
    rotation.converge()


def _set_role_password(stack: Stack, role: str, password: str) -> None:
    """On the leader (replicas follow), with the verifier PgBouncer will hold: the role takes
    the new password before any client has it, so Patroni and PgBouncer, which keep their
    connections, notice nothing until `up` hands them the new value."""
    leader = stack.leader()
    if leader is None:
        raise HastackError(f"stack {stack.name!r} has no leader to change a password on")
    verifier = stack.secrets.scram(role, password)
    with stack.connect(leader) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
        )


# --- is the old value refused? --------------------------------------------------------------

AUTH_REFUSALS = ("password authentication failed", "SASL authentication failed")
"""How PostgreSQL and PgBouncer refuse a wrong SCRAM password."""

RELOAD_SETTLE_S = 15.0
"""Patroni and PgBouncer reload on SIGHUP, asynchronously: the old value may be accepted for a
moment after `up` returns."""


def _refused_once_reloaded(ask: Callable[[], Answer]) -> Answer:
    def check() -> tuple[Answer | None, str]:
        answer = ask()
        return (answer if answer[0] else None), answer[1]

    try:
        return poll(check, what="the old value refused", timeout_s=RELOAD_SETTLE_S, interval_s=0.5)
    except WaitTimeout:
        return ask()  # the verdict as it stands at the deadline


def old_secret_refused(stack: Stack, name: str, old: Secrets) -> Answer:
    """Ask the component that checks secret `name` whether it still takes its value in `old`
    (the secrets as they were before the rotation)."""
    try:
        return _ASK[name](stack, old)
    except Exception as exc:  # a question that cannot be asked is no proof either way
        return None, f"could not check: {type(exc).__name__}: {str(exc)[:200]}"


def _app_login_refuses(stack: Stack, old: Secrets) -> Answer:
    """The retired login with its old password: refused by PostgreSQL and by PgBouncer."""
    login, password = old.app_login, old.app_password
    at_leader = _role_refuses(stack, login, password)
    at_pooler = _pgbouncer_refuses(stack, login, password, stack.plan.spec.postgres.database)
    return bool(at_leader[0] and at_pooler[0]), f"{at_leader[1]}; {at_pooler[1]}"


def _role_refuses(stack: Stack, role: str, old: str) -> Answer:
    plan = stack.plan
    leader = stack.leader() or plan.postgres_nodes[0].name
    node = plan.node(leader)
    # pg_hba lets the superuser in only through the node's socket, everyone else over TLS.
    if role == roles.SUPERUSER:
        where = {"host": str(node.paths.socket_dir), "sslmode": "disable"}
    else:
        where = {"host": node.address, "sslmode": "verify-full"}
    return _login_refused(
        stack,
        leader,
        role,
        old,
        port=plan.spec.postgres.port,
        dbname=plan.spec.postgres.database,
        **where,
    )


def _pgbouncer_refuses(stack: Stack, user: str, old: str, dbname: str = "pgbouncer") -> Answer:
    plan = stack.plan
    return _login_refused(
        stack,
        "PgBouncer",
        user,
        old,
        host=plan.services_address,
        port=plan.spec.pgbouncer.port,
        dbname=dbname,
        sslmode="verify-full",
    )


def _login_refused(stack: Stack, who: str, user: str, old: str, **where: Any) -> Answer:
    """A login with the old password: refused for its password, or a definite no. Any other
    failure (the server down) raises: that is no answer."""
    try:
        psycopg.connect(
            user=user,
            password=old,
            sslrootcert=str(stack.plan.paths.ca_cert),
            connect_timeout=3,
            **where,
        ).close()
    except psycopg.OperationalError as exc:
        if any(refusal in str(exc) for refusal in AUTH_REFUSALS):
            return True, f"{who} refused {user!r} with the old password"
        raise
    return False, f"{who} admitted {user!r} with the old password"


def _patroni_refuses(stack: Stack, old: Secrets) -> Answer:
    plan = stack.plan
    answers = {}
    for node in plan.postgres_nodes:
        url = f"https://{node.address}:{plan.spec.patroni.rest_port}/switchover"
        response = httpx.post(
            url,
            json={},  # not a valid switchover: accepted credentials answer 400, not 401
            auth=(roles.PATRONI_REST, old.patroni_rest_password),
            verify=str(plan.paths.ca_cert),
            timeout=3,
        )
        answers[node.name] = response.status_code
    refused = all(code == 401 for code in answers.values())
    return refused, f"POST /switchover with the old password: {answers}"


def _stats_refuse(stack: Stack, old: Secrets) -> Answer:
    plan = stack.plan
    url = f"https://{plan.services_address}:{plan.spec.haproxy.stats_port}/"
    ca = str(plan.paths.ca_cert)
    auth = (roles.HAPROXY_STATS, old.haproxy_stats_password)
    code = httpx.get(url, auth=auth, timeout=3, verify=ca).status_code
    return code == 401, f"stats page with the old password: HTTP {code}"


def _monitoring_refuses(stack: Stack, old: Secrets) -> Answer:
    plan = stack.plan
    auth = ("hastack", old.monitoring_password)
    ca = str(plan.paths.ca_cert)
    codes = [
        httpx.get(f"{url}/-/healthy", auth=auth, timeout=3, verify=ca).status_code
        for url in (plan.prometheus_url, plan.alertmanager_url)
    ]
    return all(c == 401 for c in codes), (
        f"Prometheus and Alertmanager with the old password: HTTP {codes[0]}, {codes[1]}"
    )


def _redis_refuses(stack: Stack, old: Secrets) -> Answer:
    if stack.redis().accepts(old.redis_password):
        return False, "Redis accepted AUTH with the old password"
    return True, "Redis: AUTH with the old password refused (WRONGPASS)"


def _haproxy_forgot_token(stack: Stack, old: Secrets) -> Answer:
    """The token is an inline ACL pattern: HAProxy's runtime API lists every ACL's patterns."""
    admin = stack.haproxy()
    patterns: list[str] = []
    for line in admin.command("show acl").splitlines():
        acl_id = line.split(" ", 1)[0]
        if acl_id.isdigit():
            patterns += admin.command(f"show acl #{acl_id}").split()
    if old.load_test_token in patterns:
        return False, "HAProxy still matches the old load-test token"
    new = stack.secrets.load_test_token
    if new not in patterns:
        return None, "HAProxy holds neither token (is the load-test ACL configured?)"
    return True, "HAProxy's ACLs hold the new load-test token, not the old one"


def _app_refuses_old_key(stack: Stack, old: Secrets) -> Answer:
    """A download URL signed with the old key (the demo's protected files) must be refused."""
    plan = stack.plan
    if not (plan.app_is_demo and plan.app_instances):
        return None, "only the demo app's signed URLs can be tried"
    path = sign_url(
        derive_key(old.app_secret_key, SIGNED_URLS), "/files/site-1-work-orders.csv", ttl_s=60
    )
    response = httpx.get(f"{plan.app_url}{path}", verify=str(plan.paths.ca_cert), timeout=3)
    seen = f"a URL signed with the old key: HTTP {response.status_code}"
    answers = {403: True, 200: False}  # refused / opened; anything else answers neither
    return answers.get(response.status_code), seen


def _pgbouncer_admin_refuses(stack: Stack, old: Secrets) -> Answer:
    return _pgbouncer_refuses(stack, roles.PGBOUNCER_ADMIN, old.pgbouncer_admin_password)


def _asks_role(name: str, role: str) -> Callable[[Stack, Secrets], Answer]:
    return lambda stack, old: _role_refuses(stack, role, getattr(old, name))


_ASK: dict[str, Callable[[Stack, Secrets], Answer]] = {
    # app_a/app_b are asked through app_password (the login it names before the rotation).
    **{
        name: _asks_role(name, role)
        for name, role in ROLE_PASSWORDS.items()
        if name not in NOT_ROTATED
    },
    "app_password": _app_login_refuses,
    "pgbouncer_admin_password": _pgbouncer_admin_refuses,
    "patroni_rest_password": _patroni_refuses,
    "haproxy_stats_password": _stats_refuse,
    "redis_password": _redis_refuses,
    "monitoring_password": _monitoring_refuses,
    "load_test_token": _haproxy_forgot_token,
    "app_secret_key": _app_refuses_old_key,
}
