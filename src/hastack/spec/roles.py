"""Fixed names of the database roles and service users the stack creates."""

SUPERUSER = "postgres"
REPLICATION = "replicator"
REWIND = "rewind"
OWNER = "app_owner"
"""Owns the application database and its objects; NOLOGIN, used with SET ROLE for migrations."""
APP = "app"
"""The applications' privileges: DML only, owns nothing (so row-level security applies).
NOLOGIN: applications log in as one of APP_LOGINS, which are its members."""
APP_LOGINS = ("app_a", "app_b")
"""Two login roles with `app`'s privileges. PostgreSQL keeps one password per role, so a
password rotation gives the idle login a new password, moves applications to it, and only
then retires the other: both are valid while the instances restart."""
READONLY = "readonly"
MONITOR = "monitor"
"""For exporters and health checks: pg_monitor (statistics, replication state), no table data."""
PATRONI_REST = "patroni"
PGBOUNCER_ADMIN = "pgbouncer_admin"
HAPROXY_STATS = "admin"
MONITORING_WEB = "hastack"
"""The one user of Prometheus' and Alertmanager's web interface (and of the alert receiver)."""
