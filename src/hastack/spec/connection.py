"""Connection settings applications get (`hastack env`): URLs built from the plan and secrets."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from hastack.spec.plan import StackPlan
from hastack.spec.secrets import Secrets


def pg_url(
    user: str, password: str, host: str, port: int, dbname: str, ca: Path | None = None
) -> str:
    """A libpq URL; the password is quoted so that any character is safe. With `ca`, TLS
    with the server verified by name against the stack's CA."""
    url = f"postgresql://{quote(user)}:{quote(password, safe='')}@{host}:{port}/{dbname}"
    if ca is not None:
        url += f"?sslmode=verify-full&sslrootcert={quote(str(ca))}"
    return url


def connection_settings(plan: StackPlan, secrets: Secrets) -> dict[str, str]:
    """DATABASE_URL (PgBouncer, read-write), DATABASE_URL_RO (PgBouncer, replicas),
    DATABASE_URL_DIRECT (HAProxy read-write, no pooler), REDIS_URL. All as the current
    application login (a member of the `app` role)."""
    spec = plan.spec
    host = plan.services_address
    rw_db, ro_db = plan.pgbouncer_databases
    pw, login = secrets.app_password, secrets.app_login
    ca = plan.paths.ca_cert
    app = {"APP_URL": plan.app_url} if plan.app_instances else {}
    return {
        **app,
        "DATABASE_URL": pg_url(login, pw, host, spec.pgbouncer.port, rw_db, ca),
        "DATABASE_URL_RO": pg_url(login, pw, host, spec.pgbouncer.port, ro_db, ca),
        "DATABASE_URL_DIRECT": pg_url(
            login, pw, host, spec.haproxy.rw_port, spec.postgres.database, ca
        ),
        "REDIS_URL": (
            f"redis://:{quote(secrets.redis_password, safe='')}@{host}:{spec.redis.port}/0"
        ),
    }


def tracing_settings(plan: StackPlan) -> dict[str, str]:
    """The standard OpenTelemetry variables for the app's traces (any OTel SDK reads them,
    so an app run by `command:` traces too); nothing while no endpoint is given."""
    tracing = plan.spec.app.tracing
    if tracing.otlp_endpoint is None:
        return {}
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": tracing.otlp_endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": f"{tracing.sample_ratio:g}",
        "OTEL_SERVICE_NAME": tracing.service_name,
    }


def monitoring_urls(plan: StackPlan) -> dict[str, str]:
    """PROMETHEUS_URL, ALERTMANAGER_URL and DASHBOARD_URL with monitoring (their login:
    user `hastack`, `hastack secrets show monitoring_password`); nothing without."""
    if not plan.monitoring_enabled:
        return {}
    return {
        "PROMETHEUS_URL": plan.prometheus_url,
        "ALERTMANAGER_URL": plan.alertmanager_url,
        "DASHBOARD_URL": plan.dashboard_url,
    }


def mask(url: str) -> str:
    """The URL with its password replaced by ****, for summaries and logs."""
    scheme, sep, rest = url.partition("://")
    creds, at, hostpart = rest.rpartition("@")
    if not at:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:****@{hostpart}"
