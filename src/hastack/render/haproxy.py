"""HAProxy in front of PostgreSQL: read-write and read-only ports checked via Patroni's REST API."""

from __future__ import annotations

from hastack.render.secrets import Secrets
from hastack.spec import roles
from hastack.spec.plan import StackPlan

MIN_FDS = 16384
"""supervisord's minfds, inherited by HAProxy (see render/supervisord.py)."""
MAXCONN = (MIN_FDS - 100) // 2
"""Global connection cap derived from the descriptor limit: each proxied connection holds
two descriptors (HAProxy refuses to start when maxconn does not fit the limit)."""

RW_BACKEND = "pg_primary"
RO_BACKEND = "pg_replicas"
APP_BACKEND = "web_app"
HSTS = "max-age=31536000; includeSubDomains"

TLS_CIPHERSUITES = ":".join(
    ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
)
TLS_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ]
)
TLS_GLOBALS = (
    "    ssl-default-bind-options ssl-min-ver TLSv1.2\n"
    f"    ssl-default-bind-ciphersuites {TLS_CIPHERSUITES}\n"
    f"    ssl-default-bind-ciphers {TLS_CIPHERS}\n"
)


def _server_lines(plan: StackPlan) -> str:
    pg_port, rest_port = plan.spec.postgres.port, plan.spec.patroni.rest_port
    return "".join(
        f"    server {n.name} {n.address}:{pg_port} check port {rest_port}\n"
        for n in plan.postgres_nodes
    )


def _default_server(plan: StackPlan) -> str:
    c = plan.spec.haproxy.check
    # Fast detection measured on this machine class: a dead primary leaves the pool within
    # ~0.5 s; shutdown-sessions cuts clients still talking to it; a layer-4 error marks a
    # server down at once instead of waiting for the next check.
    return (
        f"    default-server inter {c.inter_ms}ms fastinter {c.fastinter_ms}ms "
        f"downinter {c.downinter_ms}ms fall {c.fall} rise {c.rise} "
        "on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down\n"
    )


def _backend(plan: StackPlan, name: str, uri: str) -> str:
    return (
        f"backend {name}\n"
        "    option httpchk\n"
        f"    http-check send meth GET uri {uri}\n"
        "    http-check expect status 200\n" + _default_server(plan) + _server_lines(plan)
    )


LOAD_TEST_HEADER = "X-Hastack-Load"


def _edge_limit(plan: StackPlan, secrets: Secrets) -> str:
    limit = plan.spec.http.edge_rate_limit
    if limit.requests == 0:
        return ""
    # HAProxy's own 429 has no Retry-After; denied requests keep counting, so a client that
    # keeps hammering stays limited until its rate falls. Drills and benchmarks all come from
    # 127.0.0.1 and carry a secret header instead of being limited.
    return (
        f"    stick-table type ip size 100k expire {max(30, 2 * limit.period_s)}s "
        f"store http_req_rate({limit.period_s}s)\n"
        f"    acl load_test req.hdr({LOAD_TEST_HEADER}) -m str {secrets.load_test_token}\n"
        "    http-request track-sc0 src unless load_test\n"
        "    http-request return status 429 content-type application/json "
        f'string \'{{"error":"rate limited"}}\' hdr Retry-After {limit.period_s} '
        f"if !load_test {{ sc_http_req_rate(0) gt {limit.requests} }}\n"
    )


def _http_sections(plan: StackPlan, secrets: Secrets) -> str:
    """Frontends for HTTP (redirect) and HTTPS, and the app backend."""
    if not plan.app_instances:
        return ""
    http = plan.spec.http
    app = plan.spec.app
    addr = plan.services_address
    sticky = http.sticky_sessions
    servers = "".join(
        f"    server {i.name} {i.address}:{i.port} check"
        + (f" cookie {i.name}" if sticky else "")
        + "\n"
        for i in plan.app_instances
    )
    c = http.check
    return (
        f"""
frontend web_http
    mode http
    bind {addr}:{http.http_port}
    http-request redirect scheme https code 301

frontend web_https
    mode http
    bind {addr}:{http.https_port} ssl crt {plan.paths.haproxy_pem} alpn h2,http/1.1
    option forwardfor
    timeout client {http.timeout_client_s}s
    timeout http-request {http.timeout_http_request_s}s
    timeout http-keep-alive {http.timeout_keepalive_s}s
    http-request set-header X-Forwarded-Proto https
{_edge_limit(plan, secrets)}    http-response set-header Strict-Transport-Security "{HSTS}"
    http-response set-header X-Content-Type-Options nosniff
    http-response set-header X-Frame-Options DENY
    http-response set-header Referrer-Policy no-referrer
    default_backend {APP_BACKEND}

backend {APP_BACKEND}
    mode http
    balance {http.balance}
    option httpchk
    http-check send meth GET uri {app.health_path}
    http-check expect status 200
    http-reuse safe
    timeout connect 1s
    timeout server {http.timeout_server_s}s
    timeout queue 10s
    retries {http.retries}
    option redispatch 1
    # Replay a request on another instance when its connection fails or it died mid-way;
    # only methods safe to repeat.
    retry-on conn-failure empty-response response-timeout 503
    http-request disable-l7-retry unless {{ method GET HEAD OPTIONS }}
"""
        + ("    cookie HASTACK_SERVER insert indirect nocache httponly secure\n" if sticky else "")
        + (f"    default-server inter {c.inter_ms}ms fall {c.fall} rise {c.rise}\n" + servers)
    )


def render_haproxy(plan: StackPlan, secrets: Secrets) -> str:
    hap = plan.spec.haproxy
    addr = plan.services_address
    socket = plan.paths.haproxy_socket
    lag = hap.replica_max_lag_bytes
    return f"""\
# Generated by hastack for stack {plan.name!r}. Do not edit: `hastack up` rewrites it.
global
    maxconn {MAXCONN}
    # Runtime API: status reads server states here; the master passes listeners to new
    # workers through it on reload.
    stats socket {socket} mode 600 level admin expose-fd listeners
    log stderr format iso local0 notice
    # Drained or maintenance servers stay so across a reload.
    server-state-file {plan.paths.haproxy_server_state}
{TLS_GLOBALS}
defaults
    mode tcp
    log global
    option dontlognull
    retries 1
    option redispatch 1
    timeout connect {hap.timeout_connect_ms}ms
    timeout check {hap.timeout_check_ms}ms
    timeout client {hap.timeout_client_s}s
    timeout server {hap.timeout_server_s}s
    load-server-state-from-file global

frontend pg_rw
    bind {addr}:{hap.rw_port}
    default_backend {RW_BACKEND}

frontend pg_ro
    bind {addr}:{hap.ro_port}
    # Replicas when any is healthy, otherwise the primary: reads keep working.
    use_backend {RO_BACKEND} if {{ nbsrv({RO_BACKEND}) gt 0 }}
    default_backend {RW_BACKEND}

{_backend(plan, RW_BACKEND, "/primary")}
{_backend(plan, RO_BACKEND, f"/replica?lag={lag}")}
frontend stats
    mode http
    bind {addr}:{hap.stats_port}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /
    stats refresh 5s
    stats show-legends
    stats auth {roles.HAPROXY_STATS}:{secrets.haproxy_stats_password}
{_http_sections(plan, secrets)}"""
