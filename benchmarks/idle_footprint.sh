#!/usr/bin/env bash
# Memory (PSS) and CPU of every process of a running, idle stack over 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/hastack -c "${SPEC:-hastack.yaml}" bench idle --window 30 "$@"
