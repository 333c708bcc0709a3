"""A bare ASGI server for `bench http`'s baseline: the same uvicorn as the instances, with no
middleware, on an address no instance uses."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hastack.errors import HastackError
from hastack.polling import WaitTimeout
from hastack.spec.plan import APP_HOST_BASE, host_address
from hastack.tools.base import Background

if TYPE_CHECKING:
    from hastack.runtime.stack import Stack

BARE_HOST = APP_HOST_BASE + 50
"""Host number of the bare baseline server (.160): unused by instances."""


@contextlib.contextmanager
def bare_server(stack: Stack, target: str) -> Iterator[str]:
    """Serve `target` (module:attribute) as the app user; yield its base URL."""
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
    server = Background(argv, user=plan.service_users["app"])

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex((address, port)) == 0

    try:
        try:
            stack.until(listening, what="the bare baseline server", timeout_s=15, interval_s=0.1)
        except WaitTimeout:
            raise HastackError(
                f"the bare baseline server ({target}) did not start", "hastack logs app1"
            ) from None
        yield f"http://{address}:{port}/"
    finally:
        server.terminate()
