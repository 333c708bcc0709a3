"""The Docker CLI: images, a Swarm, stacks and their containers. One wrapper, argv built here.

Debian's `docker.io` CLI is used (the version of its daemon) unless `HASTACK_DOCKER` names
another; `DOCKER_HOST` picks the daemon (the tests run their own, on a private socket).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hastack.tools.base import ToolError, ToolResult, run, run_pipeline

DEFAULT_DOCKER = "/usr/bin/docker"


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    """The Swarm service (`<stack>_<service>`) or Compose service it runs."""
    state: str
    """running, exited, ...; `health` says whether its healthcheck passes."""
    health: str
    """healthy, unhealthy, starting, or '' without a healthcheck."""


class Docker:
    def __init__(self, host: str | None = None, binary: str | None = None) -> None:
        self.binary = binary or os.environ.get("HASTACK_DOCKER", DEFAULT_DOCKER)
        self.env = {"DOCKER_HOST": host} if host else {}

    def run(self, *args: str, timeout_s: float = 120.0) -> ToolResult:
        return run([self.binary, *args], env=self.env, timeout_s=timeout_s)

    def run_input(self, stdin: str, *args: str, timeout_s: float = 120.0) -> ToolResult:
        """With `stdin` (a request holding secrets goes here, never in argv or env)."""
        return run([self.binary, *args], env=self.env, timeout_s=timeout_s, input_text=stdin)

    def checked(self, what: str, *args: str, timeout_s: float = 120.0, hint: str = "") -> str:
        result = self.run(*args, timeout_s=timeout_s)
        if not result.ok:
            raise ToolError(what, result, hint)
        return result.stdout

    def reachable(self) -> ToolResult:
        """`docker version` against the daemon: fails when none answers."""
        return self.run("version", "--format", "{{.Server.Version}}", timeout_s=20)

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, timeout_s=30).ok

    def import_tree(self, root: Path, ref: str, exclude: Sequence[str] = ()) -> None:
        """A directory tree (a debootstrap root) as a one-layer image."""
        tar = ["tar", "-C", str(root), *(f"--exclude={e}" for e in exclude), "-c", "."]
        packed, imported = run_pipeline(
            tar, [self.binary, "import", "-", ref], timeout_s=900, env_second=self.env
        )
        if not packed.ok:
            raise ToolError(f"cannot pack {root}", packed)
        if not imported.ok:
            raise ToolError(f"docker import of {root} as {ref} failed", imported)

    def build(self, context: Path, tag: str, timeout_s: float = 1800.0) -> ToolResult:
        # The host's network: the build needs no bridge (the daemon runs without one).
        result = self.run(
            "build", "--network", "host", "-t", tag, str(context), timeout_s=timeout_s
        )
        if not result.ok:
            raise ToolError(f"docker build of {tag} failed", result)
        return result

    def swarm_state(self) -> str:
        """inactive, active, pending, error, locked."""
        return self.checked("docker info failed", "info", "--format", "{{.Swarm.LocalNodeState}}")

    def swarm_init(self, address: str, port: int, data_path_port: int) -> None:
        self.checked(
            f"docker swarm init on {address} failed",
            "swarm",
            "init",
            "--advertise-addr",
            address,
            "--listen-addr",
            f"{address}:{port}",
            "--data-path-port",
            str(data_path_port),
        )

    def stack_deploy(self, compose_file: Path, name: str) -> str:
        return self.checked(
            f"docker stack deploy of {name} failed",
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            str(compose_file),
            name,
            timeout_s=300,
        )

    def stack_rm(self, name: str) -> ToolResult:
        return self.run("stack", "rm", name, timeout_s=120)

    def containers(self, label_filter: str) -> list[Container]:
        """Running (and restarting) containers with a label, e.g.
        `com.docker.stack.namespace=hs`."""
        out = self.checked(
            "docker ps failed",
            "ps",
            "--no-trunc",
            "--filter",
            f"label={label_filter}",
            "--format",
            "{{json .}}",
        )
        found = []
        for line in out.splitlines():
            row: dict[str, Any] = json.loads(line)
            labels: dict[str, str] = {}
            for item in str(row.get("Labels", "")).split(","):
                key, sep, value = item.partition("=")
                if sep:
                    labels[key] = value
            status = str(row.get("Status", ""))
            health = next(
                (h for h in ("healthy", "unhealthy", "starting") if f"({h}" in status), ""
            )
            found.append(
                Container(
                    id=str(row["ID"]),
                    name=str(row["Names"]),
                    service=labels.get(
                        "com.docker.swarm.service.name",
                        labels.get("com.docker.compose.service", ""),
                    ),
                    state=str(row.get("State", "")),
                    health="unhealthy" if "unhealthy" in status else health,
                )
            )
        return found

    def service_update(self, service: str, *args: str, timeout_s: float = 300.0) -> ToolResult:
        return self.run("service", "update", *args, service, timeout_s=timeout_s)

    def remove_volume(self, name: str) -> ToolResult:
        return self.run("volume", "rm", name, timeout_s=60)

    def compose(self, compose_binary: str, project: str, file: Path, *args: str) -> ToolResult:
        """Compose v2 (its own binary) against the same daemon."""
        return run(
            [compose_binary, "-p", project, "-f", str(file), *args],
            env=self.env,
            timeout_s=600,
        )
