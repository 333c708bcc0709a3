"""Names the stack's parts share: HAProxy's backends and frontends, the load-test header.

The HAProxy renderer writes them; the runtime, ops and drills address HAProxy's runtime API
with them. Fixed names, not settings: they live here so that every layer reads one spelling.
"""

from __future__ import annotations

RW_BACKEND = "pg_primary"
"""Read-write PostgreSQL backend (the leader, checked through Patroni's /primary)."""
RO_BACKEND = "pg_replicas"
"""Read-only PostgreSQL backend (streaming replicas)."""
APP_BACKEND = "web_app"
"""The app instances."""
WEB_FRONTEND = "web_https"
"""The HTTPS frontend; its stick table counts each client's requests (the edge limit)."""
LOAD_TEST_HEADER = "X-Hastack-Load"
"""Requests carrying the stack's load-test token in this header bypass the edge limit."""

BUSY_MESSAGE = "the service is busy, try again shortly"
"""HAProxy's own 503 (its queue full or timed out) says this, as the app's errors do."""

BACKUP_TYPES = ("full", "diff", "incr")
"""pgBackRest's backup types: everything, changes since the last full, since the last backup."""
