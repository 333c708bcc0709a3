"""Roles and the application database, created idempotently on the leader."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from hastack.errors import HastackError
from hastack.spec import roles

if TYPE_CHECKING:
    from hastack.runtime.stack import Stack


def _ensure_role(conn: psycopg.Connection[tuple[object, ...]], role: str, login: bool) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if not exists:
        conn.execute(
            sql.SQL("CREATE ROLE {} {}").format(
                sql.Identifier(role), sql.SQL("LOGIN" if login else "NOLOGIN")
            )
        )


def _member_of(conn: psycopg.Connection[tuple[object, ...]], member: str, role: str) -> bool:
    row = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (member, role)).fetchone()
    return bool(row and row[0])


def ensure_database_when_ready(stack: Stack, leader: str, timeout_s: float) -> None:
    """`ensure_database`, tried again for up to `timeout_s`: right after a promotion the
    leader may refuse a connection for a moment."""

    def attempt() -> tuple[bool | None, str]:
        try:
            ensure_database(stack, leader)
        except HastackError as exc:
            return None, exc.what
        return True, ""

    stack.wait(
        attempt, what="roles and database on the leader", timeout_s=timeout_s, interval_s=0.5
    )


def ensure_database(stack: Stack, leader: str) -> None:
    """`app_owner` owns the database and its objects; `app` gets DML through default
    privileges and owns nothing, so row-level security applies to it, and applications log
    in as one of its two members (APP_LOGINS); `readonly` reads."""
    db = stack.plan.spec.postgres.database
    secrets = stack.secrets
    app, ro, owner = roles.APP, roles.READONLY, roles.OWNER
    logins = [(login, secrets.password_of(login)) for login in roles.APP_LOGINS]
    logins += [(ro, secrets.readonly_password), (roles.MONITOR, secrets.monitor_password)]
    try:
        with stack.connect(leader, "postgres") as conn:
            _ensure_role(conn, owner, login=False)
            _ensure_role(conn, app, login=False)
            # A stack from before the two logins had `app` log in itself.
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(sql.Identifier(app)))
            for role, password in logins:
                _ensure_role(conn, role, login=True)
                # The same verifier PgBouncer holds, so it can log in with the client's proof.
                conn.execute(
                    sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(secrets.scram(role, password))
                    )
                )
            for login in roles.APP_LOGINS:
                if not _member_of(conn, login, app):
                    conn.execute(
                        sql.SQL("GRANT {} TO {}").format(sql.Identifier(app), sql.Identifier(login))
                    )
            for reader in (ro, roles.MONITOR):
                conn.execute(
                    sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                        sql.Identifier(reader)
                    )
                )
            # Statistics and replication state for exporters, never the application's rows.
            conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(roles.MONITOR)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(db), sql.Identifier(owner)
                    )
                )
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db))
            )
            conn.execute(
                sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}, {}").format(
                    sql.Identifier(db), sql.Identifier(app), sql.Identifier(ro)
                )
            )
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(db), sql.Identifier(roles.MONITOR)
                )
            )
        with stack.connect(leader, db) as conn:
            _grant_schema(conn, app, ro, owner)
    except psycopg.Error as exc:
        raise HastackError(
            f"cannot create roles and database on {leader}: {str(exc).strip()}",
            f"hastack logs {leader} postgres",
        ) from None


def _grant_schema(
    conn: psycopg.Connection[tuple[object, ...]], app: str, ro: str, owner: str
) -> None:
    ident = sql.Identifier
    statements: list[sql.SQL | sql.Composed] = [
        sql.SQL("ALTER SCHEMA public OWNER TO {}").format(ident(owner)),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(ident(app), ident(ro)),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(ident(owner), ident(app)),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
            "GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {}"
        ).format(ident(owner), ident(app)),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}"
        ).format(ident(owner), ident(ro)),
        sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {}").format(
            ident(app)
        ),
    ]
    # Not `ON ALL TABLES`: that would also open partitions, which are reached only through
    # their parent so that its row-level security applies (a rerun of `up` must not undo it).
    tables = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        " AND NOT c.relispartition ORDER BY 1"
    ).fetchall()
    for (table,) in tables:
        statements.append(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                ident("public", str(table)), ident(app)
            )
        )
        statements.append(
            sql.SQL("GRANT SELECT ON {} TO {}").format(ident("public", str(table)), ident(ro))
        )
    for statement in statements:
        conn.execute(statement)
