"""Check every rendered file with the program that will read it, before any is written."""

from __future__ import annotations

import functools
import socket
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hastack.render.files import RenderedFile
from hastack.spec.plan import StackPlan
from hastack.tools.base import ToolError
from hastack.tools.config_checks import (
    check_haproxy_config,
    check_patroni_config,
    check_pgbouncer_config,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def validate_rendered(plan: StackPlan, files: Sequence[RenderedFile], *, dcs_running: bool) -> None:
    """Run the checkers in parallel (each is a process start, ~1 s for Patroni). Raises the
    first ToolError, naming the file and the checker's complaint."""
    by_path = {f.path: f for f in files}
    binaries = plan.spec.binaries
    with tempfile.TemporaryDirectory(prefix="hastack-check-") as tmp:
        scratch = Path(tmp)

        def copy(name: str, path: Path) -> Path:
            candidate = scratch / name
            candidate.write_text(by_path[path].content)
            return candidate

        haproxy = copy("haproxy.cfg", plan.paths.haproxy_config)
        if plan.paths.haproxy_hold_lua in by_path:
            # The config names the Lua file by its final path, which may not exist yet.
            lua = copy("hold.lua", plan.paths.haproxy_hold_lua)
            haproxy.write_text(
                haproxy.read_text().replace(str(plan.paths.haproxy_hold_lua), str(lua))
            )
        checks: list[Callable[[], object]] = [
            lambda: check_haproxy_config(binaries.haproxy, haproxy),
            lambda: check_pgbouncer_config(
                binaries.pgbouncer,
                by_path[plan.paths.pgbouncer_config].content,
                by_path[plan.paths.pgbouncer_auth_file].content,
                scratch_port=free_port(),
                user=plan.service_users["pgbouncer"],
            ),
        ]
        for node in plan.postgres_nodes:
            candidate = copy(f"patroni-{node.name}.yml", node.paths.patroni_config)
            # The file is checked, not the data directory's state: Patroni rejects a config
            # whose data_dir exists but is damaged, and a damaged replica (which Patroni or
            # the watcher rebuilds) must never keep `up` from applying a config.
            candidate.write_text(
                candidate.read_text().replace(
                    f"data_dir: {node.paths.pgdata}\n", f"data_dir: {scratch / node.name}\n"
                )
            )
            checks.append(
                functools.partial(
                    check_patroni_config, binaries.patroni, candidate, dcs_running=dcs_running
                )
            )
        with ThreadPoolExecutor(max_workers=len(checks)) as pool:
            futures = [pool.submit(check) for check in checks]
        errors = [f.exception() for f in futures if f.exception() is not None]
    for error in errors:
        if isinstance(error, ToolError):
            raise error
    if errors:
        raise errors[0]  # type: ignore[misc]
