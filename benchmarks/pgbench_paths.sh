#!/usr/bin/env bash
# pgbench select-only and TPC-B (scale 10, 20 clients) direct to the primary, through HAProxy
# and through PgBouncer, in one run, on the stack of $SPEC (default ./hastack.yaml).
#   benchmarks/pgbench_paths.sh [extra `hastack bench pg` options, e.g. --duration 30 --json]
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/hastack -c "${SPEC:-hastack.yaml}" bench pg --scale 10 --clients 20 "$@"
