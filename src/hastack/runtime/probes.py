"""The watcher's probes of one node, each telling an answer from a refusal from silence.

A refused connection means nothing listens: the process is gone. No answer in time means the
process is frozen, cut off or only slow, which the watcher must not take for death. A
connection that cannot even be opened (no handshake in time, no route) means the host's
kernel does not answer at all: the host is down or cut off, never merely slow (a kernel
completes the handshake for a stopped or busy process).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import struct
import time
from dataclasses import dataclass

import httpx

from hastack.runtime.fencing import Probe, WatchNode
from hastack.tools.http import ca_client

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


UNREACHABLE_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})


def _unreachable_cause(exc: BaseException) -> bool:
    """A connection that got no handshake at all: no route, or the host never answered."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in UNREACHABLE_ERRNOS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _http_failure(exc: httpx.HTTPError) -> Probe:
    if isinstance(exc, httpx.ConnectTimeout) or _unreachable_cause(exc):
        return "unreachable"
    if isinstance(exc, httpx.ConnectError) and not isinstance(exc, httpx.TimeoutException):
        return "refused"
    return "timeout"


def probe_liveness(node: WatchNode, timeout_s: float) -> Probe:
    """Patroni's /liveness never touches PostgreSQL, so it answers at once even while
    PostgreSQL is down (/patroni queries PostgreSQL and can take seconds then). Any status
    counts as an answer: the process runs."""
    try:
        ca_client(node.rest_ca).get(f"{node.rest_url}/liveness", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return _http_failure(exc)
    except OSError:  # the CA cannot be read: nothing can be asked
        return "timeout"
    return "ok"


@dataclass(frozen=True)
class MemberInfo:
    """What /patroni says, when it answers in time."""

    role: str | None = None
    pg_state: str | None = None
    failsafe_active: bool = False
    dcs_age_s: float | None = None


def probe_member(node: WatchNode, timeout_s: float) -> MemberInfo:
    """Role, PostgreSQL state and failsafe mode as /patroni reports them (all None when it
    does not answer in time: unknown, never "not primary")."""
    try:
        body = ca_client(node.rest_ca).get(f"{node.rest_url}/patroni", timeout=timeout_s).json()
    except (httpx.HTTPError, ValueError, OSError):
        return MemberInfo()
    role, state, seen = body.get("role"), body.get("state"), body.get("dcs_last_seen")
    return MemberInfo(
        role=None if role is None else str(role),
        pg_state=None if state is None else str(state),
        failsafe_active=bool(body.get("failsafe_mode_is_active", False)),
        dcs_age_s=None if seen is None else max(0.0, time.time() - float(seen)),
    )


def probe_pg(node: WatchNode, timeout_s: float) -> Probe:
    """A real protocol round trip (SSLRequest -> 'S'/'N'): the postmaster must answer, so a
    frozen or hung PostgreSQL fails it where a bare TCP connect would not (the kernel
    completes the handshake for a stopped process)."""
    try:
        sock = socket.create_connection((node.address, node.pg_port), timeout=timeout_s)
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "unreachable"  # no handshake: the host's kernel does not answer
    except OSError as exc:
        return "unreachable" if exc.errno in UNREACHABLE_ERRNOS else "timeout"
    try:
        with sock:
            sock.settimeout(timeout_s)
            sock.sendall(SSL_REQUEST)
            answer = sock.recv(1)
            if answer == b"S":
                _finish_tls(sock)
            return "ok" if answer in (b"S", b"N") else "timeout"
    except OSError:
        return "timeout"


_PROBE_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_PROBE_TLS.check_hostname = False
_PROBE_TLS.verify_mode = ssl.CERT_NONE  # liveness only: the answer 'S' already counted


def _finish_tls(sock: socket.socket) -> None:
    """Complete the TLS handshake PostgreSQL agreed to before closing: a client that hangs
    up in the middle of it is logged by every node on every probe ("could not accept SSL
    connection: EOF detected"), one that closes before its startup packet is not."""
    with contextlib.suppress(OSError), _PROBE_TLS.wrap_socket(sock) as tls:
        tls.unwrap()
