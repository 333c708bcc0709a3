"""A bare ASGI server for `bench http`'s baseline: the same uvicorn as the instances, with no
middleware, on an address no instance uses."""

from __future__ import annotations

import contextlib
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hastack.errors import HastackError
from hastack.polling import WaitTimeout
from hastack.render.haproxy import render_bench_haproxy
from hastack.runtime.files import write_atomic
from hastack.spec.plan import APP_HOST_BASE, host_address
from hastack.tools.base import Background

if TYPE_CHECKING:
    from hastack.runtime.stack import Stack

BARE_HOST = APP_HOST_BASE + 50
"""Host number of the bare baseline server (.160): unused by instances."""
BENCH_PROXY_HOST = APP_HOST_BASE + 51
"""Host number of the throwaway HAProxy that measures TLS's cost (.161)."""


@contextlib.contextmanager
def bare_server(stack: Stack, target: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Serve `target` (module:attribute) as the app user, with `env` added to its
    environment; yield its base URL."""
    plan = stack.plan
    address = host_address(plan.spec.network.subnet, BARE_HOST)
    port = plan.spec.app.port
    argv = [
        str(plan.spec.binaries.app_python),
        "-m",
        "uvicorn",
        target,
        "--host",
        address,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    # The watcher is held meanwhile: a process of the app user outside supervisord is an
    # orphan to it, and it would stop the server mid-measurement (wrk then counted hundreds
    # of thousands of write errors against a dead port).
    with stack.hold(600, f"hastack bench http (bare server {target})"):
        # From /: the app user may not enter the caller's directory (a root-only checkout).
        server = Background(argv, user=plan.service_users["app"], cwd=Path("/"), env=env)
        try:
            try:
                stack.until(
                    lambda: _open(address, port),
                    what="the bare baseline server",
                    timeout_s=15,
                    interval_s=0.1,
                )
            except WaitTimeout:
                output = server.interrupt(5).stderr.strip()[-500:]
                raise HastackError(
                    f"the bare baseline server ({target}) did not start: {output}"
                ) from None
            yield f"http://{address}:{port}/"
        finally:
            server.terminate()


@contextlib.contextmanager
def bench_haproxy(stack: Stack) -> Iterator[tuple[str, str]]:
    """A throwaway HAProxy as the haproxy user, plain and TLS in front of app1 (see
    render_bench_haproxy); yields (plain URL, TLS URL). Its config lives in a root-only
    temporary directory the haproxy user may only read from; the watcher is held meanwhile
    (it would take a haproxy process outside supervisord for an orphan to take over)."""
    plan = stack.plan
    address = host_address(plan.spec.network.subnet, BENCH_PROXY_HOST)
    plain_port, tls_port = plan.spec.http.http_port, plan.spec.http.https_port
    user = plan.service_users["haproxy"]
    with tempfile.TemporaryDirectory(prefix="hastack-bench-") as scratch:
        Path(scratch).chmod(0o755)  # root's; the haproxy user may read, never write
        config = Path(scratch) / "haproxy.cfg"
        write_atomic(
            config, render_bench_haproxy(plan, address, plain_port, tls_port), "root", 0o644
        )
        with stack.hold(600, "hastack bench http (a throwaway HAProxy)"):
            # Run from the scratch directory: HAProxy returns to its starting directory after
            # reading the config, which the haproxy user may not enter (a root-only checkout).
            proxy = Background(
                [str(plan.spec.binaries.haproxy), "-db", "-f", str(config)],
                user=user,
                cwd=Path(scratch),
            )

            def listening() -> bool:
                return all(_open(address, port) for port in (plain_port, tls_port))

            try:
                try:
                    stack.until(listening, what="the bench HAProxy", timeout_s=15, interval_s=0.1)
                except WaitTimeout:
                    output = proxy.interrupt(5).stderr.strip()[-500:]
                    raise HastackError(f"the bench HAProxy did not start: {output}") from None
                yield f"http://{address}:{plain_port}", f"https://{address}:{tls_port}"
            finally:
                proxy.terminate()


def _open(address: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((address, port)) == 0
