"""The commented example `hastack init` writes. A unit test keeps it equal to the defaults."""

from __future__ import annotations

EXAMPLE_SPEC = """\
# hastack.yaml — one file describes the whole stack. `hastack check` validates it,
# `hastack plan` shows every value derived from it, `hastack up` brings it up.
# Every key below is optional; the values shown are the defaults.

name: {name}                    # stack name: system users, etcd scope, state dir
# state_dir: /var/lib/hastack/{name}   # created and owned by hastack
# target: local                 # local: `hastack up` here; compose, swarm, kubernetes,
#                               # systemd: `hastack render TARGET --out DIR` for that engine
# hosts:                        # several machines (swarm, systemd); see `hastack plan`
#   - {{name: db1, address: 10.0.0.11}}             # unplaced units: node N on host N,
#   - {{name: db2, address: 10.0.0.12}}             # services and monitoring on the first,
#   - {{name: db3, address: 10.0.0.13, runs: [pg3]}}  # backup on the last

network:
  # A loopback /24 owned by this stack: node N listens on .N, HAProxy, PgBouncer and
  # Redis on .100. Two stacks on one machine need two subnets.
  subnet: 127.0.10.0/24

etcd:
  members: 3                    # odd; member N runs on node N
  client_port: 2379
  peer_port: 2380
  heartbeat_interval_ms: 100
  election_timeout_ms: 1000

postgres:
  version: 15
  nodes: 3                      # 1 leader, 1 synchronous standby, 1 asynchronous replica
  port: 5432
  database: app                 # owned by app_owner; the app role gets DML only
  memory_mb: 256                # per node: shared_buffers 25%, effective_cache_size 75%
  # max_connections: 100        # default: PgBouncer pools + direct_connections
  direct_connections: 40
  synchronous_mode: true        # RPO 0: every acknowledged commit is on the sync standby
  synchronous_mode_strict: false
  failsafe_mode: true           # the primary keeps serving while etcd has no quorum
  data_checksums: true
  wal_keep_size_mb: 256
  parameters: {{}}                # extra postgresql.conf settings, e.g. {{work_mem: 8MB}}

patroni:
  ttl_s: 20                     # leader lock TTL (Patroni's floor); bounds unplanned failover
  loop_wait_s: 2
  retry_timeout_s: 5            # loop_wait_s + 2 x retry_timeout_s must be <= ttl_s
  maximum_lag_on_failover_bytes: 1048576
  rest_port: 8008

haproxy:
  rw_port: 5000                 # always the primary
  ro_port: 5001                 # replicas; the primary when no replica is healthy
  stats_port: 7000              # stats page (generated credentials) and /metrics
  replica_max_lag_bytes: 16777216
  timeout_connect_ms: 1000
  timeout_check_ms: 1000
  timeout_client_s: 1800
  timeout_server_s: 1800
  hold_new_connections_s: 10    # during a failover new connections wait for the new primary
  check:                        # checks of Patroni's REST API, tuned for fast failover
    inter_ms: 1000
    fastinter_ms: 250
    downinter_ms: 250
    fall: 16                    # 4 s: rides out a Patroni restart (refused = down at once)
    rise: 1

pgbouncer:
  port: 6432
  pool_mode: transaction
  max_client_conn: 500
  # default_pool_size: 25       # default: max_client_conn / 10 / 2 pools (10:1 multiplexing)
  reserve_pool_size: 5
  server_login_retry_ms: 250
  server_connect_timeout_s: 15  # longer than haproxy.hold_new_connections_s
  query_wait_timeout_s: 30

redis:
  port: 6379
  maxmemory_mb: 64
  maxmemory_policy: allkeys-lru
  appendonly: true

app:                            # the app instances behind HAProxy (the demo app by default)
  instances: 2                  # 0: no HTTP tier
  module: hastack.demo.app:build  # your ASGI app as module:attribute (served by uvicorn)
  factory: true                 # module names a function returning the app
  # command: node server.js     # or any HTTP server; gets HOST, PORT and `hastack env`
  port: 8000                    # each instance on its own address (.111, .112, ...)
  health_path: /health/ready
  tenant_header: X-Site-ID
  rate_limits:                  # app-side tiers where identity matters
    authenticated: 1000/second
    heavy_write: 20/hour
    login: 5/minute
  replica_max_lag_s: 1.0        # reads leave the replicas when they lag more
  read_your_writes_s: 5.0
  max_body_kb: 1024
  access_log: true
  graceful_timeout_s: 10

http:                           # HAProxy's HTTP tier
  http_port: 8080               # redirects to https
  https_port: 8443              # TLS (generated CA and certificate unless tls.cert/key)
  balance: leastconn
  sticky_sessions: false
  edge_rate_limit:              # per client, in HAProxy: 429 with Retry-After
    requests: 100
    period_s: 10
  tls:
    hostnames: [localhost]
  retries: 2
  timeout_client_s: 30
  timeout_server_s: 30
  timeout_http_request_s: 10
  timeout_keepalive_s: 30
  check:
    inter_ms: 1000
    fall: 2
    rise: 2

fencing:                        # fence a dead primary's node, release its lock early
  enabled: true                 # unplanned failover ~2 s instead of the ttl (~20 s)
  detect_s: 1.0                 # REST API and PostgreSQL both silent this long
  poll_interval_ms: 250
  probe_timeout_ms: 500

# binaries:                     # where the programs are (Debian 12 paths by default)
#   etcd: /usr/bin/etcd
#   haproxy: /usr/sbin/haproxy
#   pgbouncer: /usr/sbin/pgbouncer
#   redis_server: /usr/bin/redis-server
#   postgres_bin_dir: /usr/lib/postgresql/15/bin
#   patroni: /opt/hastack/venv/bin/patroni
#   app_python: /opt/hastack/venv/bin/python
"""


def example_spec(name: str = "demo") -> str:
    return EXAMPLE_SPEC.format(name=name)
